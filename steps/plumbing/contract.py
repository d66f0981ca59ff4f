"""The names the steps agree on, declared once: the tags on runs and registered versions, the
registry's aliases, and the artifact layout each step logs and the next one reads. Nothing else
types them."""

# prepare's output, declared with the code that writes it: its split files and the task file
from steps.core.data import SPLITS, split_file  # noqa: F401
from steps.core.task import FILE as TASK_FILE  # noqa: F401
from steps.core.card import FILE as CARD_NAME  # noqa: F401

# MLflow's own run tags
COMMIT_TAG = "mlflow.source.git.commit"
ENTRY_POINT_TAG = "mlflow.project.entryPoint"
PARENT_TAG = "mlflow.parentRunId"
RUN_NAME_TAG = "mlflow.runName"

# the steps' run tags
OUTPUT_TAG = "output_uri"  # what `main` reads back from a finished step to feed the next
ERROR_TAG = "error"        # the one-line reason a step failed
DATA_DIGEST_TAG = "data_digest"
DIRTY_TAG = "git_dirty"    # "true" when the code that ran differs from its commit
PROCESS_TAG = "process"    # host:pid:start time of the step's process, to tell a dead RUNNING run from a live one
EPOCH_TAG = "resumable_epoch"  # train: set once that epoch's checkpoint is wholly logged
REGISTERED_MODEL_TAG = "registered_model_uri"  # main: the version its register step made

# a registered version's tags (besides DATA_DIGEST_TAG)
FORMAT_TAG = "serving_format"
CHECKPOINT_TAG = "checkpoint_uri"  # train's output the version was logged from
REGISTER_RUN_TAG = "register_run_id"
TRAIN_RUN_TAG = "train_run_id"
GIT_COMMIT_TAG = "git_commit"
STATUS_TAG = "validation_status"  # passed or rejected
SCORE_TAG = "test_f1"             # a passed version's test F1 (the task's), what promotion ranks by
REASON_TAG = "rejection_reason"

# aliases
CANDIDATE_ALIAS = "candidate"  # register: the newest version
CHAMPION_ALIAS = "champion"    # validate: the best passed version

# artifact layout: each step's output folder in its run, and what prepare's holds
DATA_DIR, TOKENIZED_DIR, CHECKPOINT_DIR = "data", "tokenized", "checkpoint"
VALIDATION_PROBABILITIES = "validation_probabilities.json"  # train's, with blend=auto: both readers' on validation
LEXICAL_SPLITS = ("train", "validation")  # prepare's splits tokenize passes on as texts: the blend's lexical model's
# a registered version's model card, in its run (register's; validate rewrites it)
CARD_DIR = "card"
CARD_FILE = f"{CARD_DIR}/{CARD_NAME}"


def step_tag(entry_point: str, what: str = "run_id") -> str:
    """main's tag of one of its steps: `<entry point>_run_id`, `<entry point>_reused`."""
    return f"{entry_point}_{what}"


def split_uri(data_uri: str, split: str) -> str:
    """A split's file in prepare's output folder."""
    return f"{data_uri}/{split_file(split)}"


def beside(file_uri: str, name: str) -> str:
    """The file `name` in the folder holding `file_uri` (task.json or train.parquet beside a split)."""
    return f"{file_uri.rsplit('/', 1)[0]}/{name}"
