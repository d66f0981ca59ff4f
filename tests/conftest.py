import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.projects import _project_spec

from tests.fixtures import build_tiny_bert, messages, tickets, write_uci

PROJECT_DIR = Path(__file__).resolve().parent.parent
PROJECT = _project_spec.load_project(str(PROJECT_DIR))  # the MLproject, as `mlflow run` reads it

# Nothing here may reach the Hub: fail at once instead of retrying a network that is not there.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# MLflow's telemetry thread, finding no network, removes its session variable from os.environ; a
# request iterating os.environ at that moment (requests' proxy lookup) fails with KeyError
# '_MLFLOW_TELEMETRY_SESSION_ID' (seen once in a full run). Nothing here can send telemetry anyway.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# train's system metrics: a sample a second, so that the tests' short trainings log some
os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"
# pytest-xdist's workers run under a __main__ with neither __spec__ nor __file__, which pyspark
# (imported by MLflow's signature inference) takes for its doctest runner, and exits.
if getattr(sys.modules["__main__"], "__spec__", None) is None and not hasattr(sys.modules["__main__"], "__file__"):
    sys.modules["__main__"].__file__ = "pytest-xdist worker"


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


def children(client, parent):
    """A main run's child runs, by entry point."""
    runs = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return {r.data.tags["mlflow.project.entryPoint"]: r for r in runs}


@pytest.fixture(scope="session")
def sms_rows():
    return messages()


@pytest.fixture(scope="session")
def uci_file(tmp_path_factory, sms_rows):
    return write_uci(tmp_path_factory.mktemp("data") / "SMSSpamCollection", sms_rows)


# Behaviour checks in the tiny data's own style (the default suite is written for real SMS).
TINY_CHECKS = """text,label,capability
"WINNER! You have won a holiday. Click HERE to claim now!",spam,prize spam
"URGENT: claim your FREE car now, txt WIN to 55555",spam,prize spam
"Congratulations! You were selected for a gift card. Call 12345 now to claim",spam,prize spam
"Lucy, are we still on for coffee tonight?",ham,plans ham
"I'll be at the station after work, see you there",ham,plans ham
"Thanks for dinner, Tom! Talk next week.",ham,plans ham
"""


@pytest.fixture(scope="session")
def tiny_checks(tmp_path_factory):
    path = tmp_path_factory.mktemp("checks") / "tiny_checks.csv"
    path.write_text(TINY_CHECKS)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, sms_rows):
    return build_tiny_bert(tmp_path_factory.mktemp("model") / "tiny-bert", [text for _, text in sms_rows])


@pytest.fixture(scope="session")
def ticket_rows():
    return tickets()


@pytest.fixture(scope="session")
def ticket_file(tmp_path_factory, ticket_rows):
    """Three kinds of support ticket as CSV: an id, the text, and the label in a column named `kind`."""
    path = tmp_path_factory.mktemp("tickets") / "tickets.csv"
    pd.DataFrame({"id": range(len(ticket_rows)), "body": [text for _, text in ticket_rows],
                  "kind": [label for label, _ in ticket_rows]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def ticket_model(tmp_path_factory, ticket_rows):
    return build_tiny_bert(tmp_path_factory.mktemp("model") / "tiny-ticket-bert", [text for _, text in ticket_rows])


def output_of(command, *args):
    """The output URI a step's click command printed, run in-process."""
    result = CliRunner().invoke(command, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return next(line[len("output: "):] for line in result.output.splitlines() if line.startswith("output: "))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """An sqlite store with MLflow's tables made: building them takes seconds, copying it none."""
    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(tmp_path, monkeypatch, empty_store):
    """A fresh sqlite store and artifact root in a temporary folder, for in-process runs."""
    monkeypatch.chdir(tmp_path)  # the default artifact root, ./mlruns, lands here
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("tests")
    yield mlflow.MlflowClient()
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment exports it; later `mlflow run`s must not inherit it


@pytest.fixture
def tokenized(tracking, uci_file, tiny_model):
    """The tokenize step's output URI for the fixture messages, in the `tracking` store."""
    from steps import prepare, tokenize

    data = output_of(prepare.main, "--dataset", uci_file)
    return output_of(tokenize.main, "--data", data, "--model", tiny_model, "--max-length", 32)
