"""How every step's process talks and waits: quiet libraries and a patient tracking client.
`configure()` runs first in each step (tracking.step_run, and train on machines other than 0);
importing the package changes nothing."""

import logging
import os
import warnings

# Each step prints its own one-line progress; the libraries' progress bars and load reports would
# bury it. Set these variables to see them again. Set in the environment, so that the processes a
# step starts (training workers) inherit them.
QUIET = {"HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
         "TRANSFORMERS_VERBOSITY": "error", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
# The retry budget of every call to a tracking server (MLflow's own variables; set them to change it).
# MLflow retries a refused or failed call 9 times, waiting 0, 4, 8, ... seconds (at most 120) between
# tries: about 8 minutes. That rides out a server's restart, a deploy or a database failover without
# losing an hour of training; a server still gone after that fails the step in one line
# (tracking.step_run). A server that is down when a step starts fails it at once (no retries).
PATIENT = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "9", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2"}
UNHELPFUL_WARNINGS = (
    "The specified dataset source can be interpreted in multiple ways",
    "Hint: Inferred schema contains integer column",
    # pyspark (predict's Spark engine), which MLflow imports in every step that logs a model, says on
    # import that pandas 3 is not fully supported; predict's tests compare both engines.
    "PySpark does not yet fully support pandas",
)


class _Silenced(logging.Filter):
    """Drops MLflow's transformers-flavor warnings that say nothing to this project's users; any other
    warning still shows. Each, and why it says nothing here:"""
    MESSAGES = (
        "The model card could not be retrieved",  # register logs a local checkpoint: it has no Hub card
        "Unable to find license information",     # the same: a local checkpoint names no licence
        # every request sends the signature's batch_size and device, on purpose: no override is news
        "params provided to the `predict` method will override",
    )

    def filter(self, record):
        return not str(record.msg).startswith(self.MESSAGES)


def configure() -> None:
    """Quiet and patient as above, in this process (libraries already imported re-read the
    settings) and in the processes it starts. Changes only what the user has not set."""
    for variable, value in {**QUIET, **PATIENT}.items():
        os.environ.setdefault(variable, value)
    import datasets
    import huggingface_hub
    import transformers

    if os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1":
        datasets.disable_progress_bars()
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
        huggingface_hub.utils.disable_progress_bars()
    transformers.logging.set_verbosity(transformers.logging.get_log_levels_dict()
                                       .get(os.environ["TRANSFORMERS_VERBOSITY"], logging.WARNING))
    for message in UNHELPFUL_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    flavor_log = logging.getLogger("mlflow.transformers")
    if not any(isinstance(existing, _Silenced) for existing in flavor_log.filters):
        flavor_log.addFilter(_Silenced())
