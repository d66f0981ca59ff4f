"""What the tests share that is not a fixture: the project and `mlflow run`, the steps run
in-process, the one-line error assertion, the data and model the tests make themselves, and
real servers on loopback (PostgreSQL, an S3 API, `mlflow server`, a git daemon: the README's
Team server commands). Fixtures live in conftest.py."""

import contextlib
import glob
import importlib
import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.projects import _project_spec

PROJECT_DIR = Path(__file__).resolve().parent.parent


PROJECT = _project_spec.load_project(str(PROJECT_DIR))  # the MLproject, as `mlflow run` reads it


def run_with_tracking(tracking_uri, cwd, *command):
    """`command` run in `cwd` against the tracking store at `tracking_uri`, output captured."""
    # no MLFLOW_EXPERIMENT_ID an earlier test's set_experiment left: `mlflow run --experiment-name` refuses both
    env = {key: value for key, value in os.environ.items() if key != "MLFLOW_EXPERIMENT_ID"}
    return subprocess.run(list(map(str, command)), cwd=cwd, env={**env, "MLFLOW_TRACKING_URI": tracking_uri},
                          capture_output=True, text=True, timeout=600)


def mlflow_run(tracking_uri, cwd, project, experiment, *args):
    """`mlflow run` of `project` (a folder or git URL) in the local environment."""
    return run_with_tracking(tracking_uri, cwd, sys.executable, "-m", "mlflow", "run", project, "--env-manager",
                             "local", "--experiment-name", experiment, *args)


STEPS = ["prepare", "tokenize", "train", "register", "validate"]  # main's children, in order


def params(**values):
    return [arg for key, value in values.items() for arg in ("-P", f"{key}={value}")]


def tiny_params(uci_file, tiny_model, checks, **overrides):
    # The tiny model starts from random weights: a high learning rate and a few epochs teach it. On
    # template messages TF-IDF is hard to beat, so the tiny model may stay below the baseline.
    return params(**{"dataset": uci_file, "model": tiny_model, "epochs": 5, "batch_size": 8,
                     "learning_rate": 3e-3, "min_accuracy": 0.8, "min_f1": 0.7, "checks": checks,
                     "min_margin_over_baseline": -1, **overrides})


def error_line(result):
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error: ")]
    assert lines, result.stdout + result.stderr
    return lines[-1]


def runs_in(client, experiment: str, filter_string: str = "", **search):
    """The runs of the experiment named `experiment` (MlflowClient.search_runs' filter and options)."""
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], filter_string, **search)


def children(client, parent):
    """A main run's child runs, by entry point."""
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return {r.data.tags["mlflow.project.entryPoint"]: r for r in runs}


# Behaviour checks in the tiny data's own style (the default suite is written for real SMS).
TINY_CHECKS = """text,label,capability
"WINNER! You have won a holiday. Click HERE to claim now!",spam,prize spam
"URGENT: claim your FREE car now, txt WIN to 55555",spam,prize spam
"Congratulations! You were selected for a gift card. Call 12345 now to claim",spam,prize spam
"Lucy, are we still on for coffee tonight?",ham,plans ham
"I'll be at the station after work, see you there",ham,plans ham
"Thanks for dinner, Tom! Talk next week.",ham,plans ham
"""


def output_of(command, *args):
    """The output URI a step's click command printed, run in-process."""
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return next(line[len("output: "):] for line in result.output.splitlines() if line.startswith("output: "))


GIT = ["git", "-c", "user.name=Tests", "-c", "user.email=tests@example.com"]


BUCKET = "mlflow-artifacts"


ADMIN = "admin"


def need(module: str):
    """A test-only package's module, or a failure that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is missing: pip install -r requirements-test.txt", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, what, seconds=90, process=None, log=None):
    """Poll `ready` until it is true; fail early, with the log's end, when `process` exits."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{Path(log).read_text()[-3000:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not start in {seconds} s")


def answers(url: str) -> bool:
    return urllib.request.urlopen(url, timeout=2).status == 200


@contextlib.contextmanager
def background(command, folder: Path, what: str, ready, env=None):
    """`command` running in `folder` (its output in `<what>.log` there) until the block ends."""
    log_path = folder / f"{what.replace(' ', '-')}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(list(map(str, command)), stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                   env={**os.environ, **(env or {})})
        try:
            wait_until(ready, what, process=process, log=log_path)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def mlflow_server(folder: Path, *options, env=None, port=None):
    """`mlflow server` on a loopback port (a free one unless given) with `options`; its URL and a
    `background` context that runs it."""
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", port, "--workers", "1",
               *options]
    # No background job runners (MLflow's GenAI jobs, which the pipeline does not use): starting them
    # keeps a 2-core machine busy for most of a minute after /health answers.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    return uri, background(command, folder, "mlflow server", lambda: answers(f"{uri}/health"), env)


def postgres_bin() -> Path:
    """The folder of initdb and pg_ctl: Debian keeps them under /usr/lib/postgresql/<version>/bin."""
    found = [str(Path(path).resolve()) for path in [shutil.which("initdb")] if path] \
        or sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: `apt-get install -y postgresql` (Debian, Ubuntu) provides "
                    "initdb and pg_ctl, which these tests run on a free loopback port", pytrace=False)
    return Path(found[-1]).parent


def as_database_owner(command) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    command = list(map(str, command))
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def s3_objects(s3_env: dict, prefix: str) -> list[str]:
    client = need("boto3").client("s3", endpoint_url=s3_env["MLFLOW_S3_ENDPOINT_URL"],
                          aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
                          region_name=s3_env["AWS_DEFAULT_REGION"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@contextlib.contextmanager
def team_server(folder: Path, postgres, s3_env: dict, artifacts: str):
    """The team setup: `mlflow server --app-name basic-auth` with runs in PostgreSQL and artifacts
    in S3, either proxied through the server ("proxied") or written there by the clients
    ("direct"). Yields the URI, the admin's password and the backend store's URI."""
    need("flask_wtf")  # what mlflow[auth] adds
    auth_config = folder / "basic_auth.ini"
    auth_config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {postgres(f'auth_{artifacts}')}\n"
                           f"admin_username = {ADMIN}\nauth_cache_ttl_seconds = 60\n")
    password = f"test-password-{os.urandom(12).hex()}"
    store = f"s3://{BUCKET}/{artifacts}"
    artifact_options = ["--artifacts-destination", store] if artifacts == "proxied" else \
        ["--no-serve-artifacts", "--default-artifact-root", store]
    backend_store = postgres(f"mlflow_{artifacts}")
    uri, running = mlflow_server(folder, "--backend-store-uri", backend_store, *artifact_options,
                                 "--app-name", "basic-auth",
                                 env={**s3_env, "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
                                      "MLFLOW_AUTH_ADMIN_PASSWORD": password,
                                      "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex()})
    with running:
        yield uri, password, backend_store


NAMES = ["john", "ringo", "paul", "george", "anna", "maria", "tom", "lucy", "sam", "kate"]


THINGS = ["lunch", "the song", "the project", "dinner", "the report", "coffee", "the match", "the meeting"]


WHEN = ["tomorrow", "tonight", "later", "on monday", "next week", "after work", "this weekend"]


PLACES = ["home", "the office", "the station", "the studio", "the pub", "school"]


PRIZES = ["cash prize", "holiday", "new phone", "gift card", "car", "million dollars"]


HAM = [
    "{name}, are we still on for {thing} {when}?",
    "Can you call me when you get to {place}? {name} is waiting",
    "I'll be at {place} {when}, see you there",
    "Did {name} finish {thing} yet? Let me know {when}",
    "Thanks for {thing}, {name}! Talk {when}.",
    "I have a question about {thing}: can {name} and {name2} work on it together {when}?",
    "Do we need to get {name} involved in {thing}, or do you think they got this?",
    "Sorry I missed your call, I was at {place}. Ring me {when}",
]


SPAM = [
    "WINNER! You have won a {prize}. Click HERE to claim now!",
    "URGENT: claim your FREE {prize} now, txt WIN to {number}",
    "Want to make MILLIONS with no effort? Click HERE now! Guaranteed {prize}!",
    "Congratulations! You were selected for a {prize}. Call {number} now to claim",
    "FREE entry to win a {prize}! Text CLAIM to {number}. Don't miss out, be a winner!",
    "Get rich instantly: {prize} guaranteed, click HERE, offer ends {when}!",
]


def messages(n_ham: int = 140, n_spam: int = 60, repeats: int = 5, seed: int = 0) -> list[tuple[str, str]]:
    """(label, text) pairs; the first `repeats` messages occur twice, as in the real data."""
    rng = random.Random(seed)

    def fill(template):
        name, name2 = rng.sample(NAMES, 2)
        return template.format(name=name.capitalize(), name2=name2.capitalize(), thing=rng.choice(THINGS),
                               when=rng.choice(WHEN), place=rng.choice(PLACES), prize=rng.choice(PRIZES),
                               number=rng.randint(10000, 99999))

    def unique(templates, label, n):
        texts = set()
        while len(texts) < n:
            texts.add(fill(rng.choice(templates)))
        return [(label, text) for text in sorted(texts)]

    rows = unique(HAM, "ham", n_ham) + unique(SPAM, "spam", n_spam)
    rng.shuffle(rows)
    return rows + rows[:repeats]


def write_uci(path: Path, rows) -> Path:
    path.write_text("".join(f"{label}\t{text}\n" for label, text in rows))
    return path


def build_tiny_bert(folder: Path, texts) -> Path:
    """A 2-layer BERT of width 32 and a WordPiece tokenizer trained on `texts`, saved like a Hub model."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=True)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials))
    wordpiece.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[(t, wordpiece.token_to_id(t)) for t in ("[CLS]", "[SEP]")])
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", do_lower_case=True)

    torch.manual_seed(0)
    config = BertConfig(vocab_size=wordpiece.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Support tickets of three kinds, for the multi-class tests.
TICKETS = {
    "billing": ["I was charged twice for my {plan} plan this {period}, please refund {amount}",
                "Why is my {period} invoice {amount} higher than my {plan} plan price?",
                "Please update the card on my account, the {plan} payment of {amount} failed",
                "Can I get a receipt for the {amount} charge on my {plan} subscription?"],
    "bug": ["The {feature} page crashes every time I click {button} on my {device}",
            "Error 500 when I open {feature} from the {device} app since {period}",
            "{feature} shows a blank screen after the update, tried {button} and it froze",
            "The {button} button does nothing in {feature} on my {device}"],
    "praise": ["Love the new {feature}, it saves me hours every {period}!",
               "Thanks {agent}, the {feature} tips were brilliant and so quick",
               "Great job on {feature}, my whole team on the {plan} plan is delighted",
               "{agent} was wonderful, best support I have had, thank you!"],
}


TICKET_WORDS = {"plan": ["basic", "pro", "team", "family"], "period": ["month", "week", "quarter", "year"],
                "amount": ["$10", "$25", "$99", "$4.50"], "feature": ["dashboard", "export", "search", "calendar"],
                "button": ["save", "share", "upload", "sync"], "device": ["iPhone", "laptop", "tablet", "Android"],
                "agent": ["Maya", "Omar", "Lena", "Raj"]}


def tickets(per_class: int = 40, seed: int = 1) -> list[tuple[str, str]]:
    """(label, text) pairs: `per_class` distinct tickets of each kind, shuffled."""
    rng = random.Random(seed)
    rows = []
    for label, templates in TICKETS.items():
        texts = set()
        while len(texts) < per_class:
            texts.add(rng.choice(templates).format(**{key: rng.choice(words) for key, words in TICKET_WORDS.items()}))
        rows += [(label, text) for text in sorted(texts)]
    rng.shuffle(rows)
    return rows


# A ticket may be several kinds at once: one sentence of each of its kinds (none: a neutral one).
NEUTRAL_TICKETS = ["Hello, a question about my {plan} plan on my {device}", "Hi {agent}, writing about my account "
                   "this {period}", "Quick note from the {plan} team about {feature} on the {device}"]
TAG_SETS = [(), ("billing",), ("bug",), ("praise",), ("billing", "bug"), ("bug", "praise"), ("billing", "praise"),
            ("billing", "bug", "praise")]


def tagged_tickets(count: int = 200, seed: int = 2) -> list[tuple[str, str]]:
    """(tags joined by "|", text) pairs: `count` distinct tickets carrying none, one or several of
    TICKETS' kinds."""
    rng, rows, seen = random.Random(seed), [], set()
    while len(rows) < count:
        tags = rng.choice(TAG_SETS)
        text = " ".join(rng.choice(TICKETS[tag]) for tag in tags) or rng.choice(NEUTRAL_TICKETS)
        text = text.format(**{key: rng.choice(words) for key, words in TICKET_WORDS.items()})
        if text not in seen:
            seen.add(text)
            rows.append(("|".join(tags), text))
    return rows


# Texts users send: nothing, blanks, emoji only, another script, one word, and far more than any window.
ODD_TEXTS = ["", "   \n\t", "😀🎉🔥", "Привет, как дела? 你好吗", "ok", "word " * 4000]


def assert_one_line(message: str, *fragments: str) -> None:
    """An error a user reads: one line, saying each of `fragments`."""
    assert "\n" not in message.strip(), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def assert_one_line_error(result, *fragments: str) -> None:
    """A step command that failed as a user should see it: exit code 1, and the whole message on its
    output's last line, `Error: ...`, saying each of `fragments`. (MLflow's own "View run" links, which it
    prints when a run on a tracking server ends, may follow.)"""
    lines = [line for line in result.output.strip().splitlines()
             if not line.startswith(("🏃 View run", "🧪 View experiment"))]
    assert result.exit_code == 1, result.output
    assert lines and lines[-1].startswith("Error: ") and sum(line.startswith("Error: ") for line in lines) == 1, \
        result.output
    assert_one_line(lines[-1], *fragments)


def written(path: Path, text: str) -> Path:
    """`path` with `text` written into it."""
    path.write_text(text)
    return path
