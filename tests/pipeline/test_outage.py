"""A tracking server that goes away in the middle of `train`: back within the retry budget, the
pipeline finishes with nothing lost; gone for longer, the step fails in one line naming the
server, and nothing is registered."""

import contextlib
import math
import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from steps.core.task import FILE as TASK_FILE
from tests.helpers import PROJECT, PROJECT_DIR, STEPS, children, free_port, mlflow_server, runs_in, tiny_params

pytestmark = pytest.mark.slow

OUTAGE_S = 20


class RestartableServer:
    """`mlflow server` on one port and one store (sqlite, artifacts proxied into a folder) that a
    test stops and starts again, as an operator restarts a team's server."""

    def __init__(self, folder):
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.running = contextlib.ExitStack()

    def start(self):
        _, running = mlflow_server(self.folder, "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                                   "--artifacts-destination", self.folder / "artifacts", port=self.port)
        self.running.enter_context(running)

    def stop(self):
        self.running.close()


@pytest.fixture
def server(tmp_path):
    server = RestartableServer(tmp_path)
    server.start()
    yield server
    server.stop()


def start_main(server, folder, experiment, args, env=None):
    """`mlflow run` of the project's main against the server, in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "mlflow", "run", str(PROJECT_DIR), "--env-manager", "local", "--experiment-name",
         experiment, *args], cwd=folder, env={**os.environ, "MLFLOW_TRACKING_URI": server.uri, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_training(client, experiment, main):
    """The train step's run, once it has logged its first loss: the training is under way."""
    deadline = time.time() + 300
    while True:
        found = client.get_experiment_by_name(experiment)
        runs = found and client.search_runs(
            [found.experiment_id], "tags.`mlflow.project.entryPoint` = 'train' AND metrics.loss > 0")
        if runs:
            return runs[0]
        assert time.time() < deadline and main.poll() is None, main.communicate()[0][-3000:]
        time.sleep(0.2)


def main_run(client, experiment):
    [parent] = runs_in(client, experiment, "tags.`mlflow.project.entryPoint` = 'main'")
    return parent


def artifact_files(client, run_id, path=None):
    for item in client.list_artifacts(run_id, path):
        yield from artifact_files(client, run_id, item.path) if item.is_dir else [item.path]


def logged_steps(client, run):
    """Each metric's steps, one per logged value in step order (system metrics aside: the clock decides
    how many samples there are): a value lost leaves a gap, one sent twice a repeated step."""
    return {key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
            for key in run.data.metrics if not key.startswith("system/")}


def test_server_restarted_mid_training_loses_nothing(server, tmp_path, uci_file, tiny_model, tiny_checks):
    """No second pipeline to compare with: train's records are held to the Trainer's own schedule, which a
    value lost in the outage, or sent twice, breaks."""
    client = MlflowClient(server.uri)
    main = start_main(server, tmp_path, "restarted", tiny_params(uci_file, tiny_model, tiny_checks,
                                                                 registered_model_name="restarted"))
    wait_for_training(client, "restarted", main)
    server.stop()
    stopped = time.time()
    time.sleep(OUTAGE_S)
    server.start()
    output = main.communicate(timeout=600)[0]
    assert main.returncode == 0, output[-3000:]
    parent = main_run(client, "restarted")
    steps = children(client, parent)
    assert sorted(steps) == sorted(STEPS)
    assert {step: run.info.status for step, run in {"main": parent, **steps}.items()} == \
        dict.fromkeys(["main", *steps], "FINISHED")
    prepare, train = steps["prepare"], steps["train"]
    assert train.info.end_time / 1000 > stopped + OUTAGE_S  # the outage fell inside the training
    # Train's records against the Trainer's schedule (steps/core/training.py), from the number of
    # training rows prepare counted before the outage: loss, learning rate and gradient norm at step 1
    # and every 10th; each validation score once an epoch, at its last step; the summary once, at the end.
    epochs, batch_size = round(float(train.data.params["epochs"])), int(train.data.params["batch_size"])
    per_epoch = math.ceil(prepare.data.metrics["train_rows"] / batch_size)
    last = epochs * per_epoch
    every_10th, each_epoch = [1, *range(10, last + 1, 10)], list(range(per_epoch, last + 1, per_epoch))
    logged = logged_steps(client, train)
    validation = [key for key in logged if key.startswith("eval_")]
    assert {"eval_loss", "eval_accuracy", "eval_f1", "eval_macro_f1"} <= set(validation), sorted(logged)
    assert {key: logged.get(key) for key in ("loss", "learning_rate", "grad_norm", *validation)} == {
        "loss": every_10th, "learning_rate": every_10th, "grad_norm": every_10th,
        **dict.fromkeys(validation, each_epoch)}
    assert {key: logged.get(key) for key in ("train_loss", "train_runtime", "total_flos")} == \
        dict.fromkeys(["train_loss", "train_runtime", "total_flos"], [last])
    # The epoch goes with every training log, validation and the summary; its value says which step it was
    # logged at, so a value filed under another step shows too.
    epoch = client.get_metric_history(train.info.run_id, "epoch")
    assert sorted(m.step for m in epoch) == sorted(every_10th + each_epoch + [last])
    assert all(m.value == pytest.approx(m.step / per_epoch) for m in epoch), [(m.step, m.value) for m in epoch]
    f1 = client.get_metric_history(train.info.run_id, "eval_f1")
    assert train.data.metrics["best_validation_f1"] == max(m.value for m in f1)  # the Trainer's own best epoch
    # The whole checkpoint and every param went in; the resumable epochs were dropped once it was in.
    files = set(artifact_files(client, train.info.run_id))
    assert {f"checkpoint/{name}" for name in ("config.json", "model.safetensors", "tokenizer.json",
                                              "tokenizer_config.json", TASK_FILE)} | {"training_args.json"} <= files
    assert not [name for name in files if name.startswith("resumable/")]
    assert set(train.data.params) == {*PROJECT.get_entry_point("train").parameters, "effective_batch_size",
                                      "resolved_class_weights", "resolved_thresholds"}
    [version] = client.search_model_versions("name = 'restarted'")
    assert version.status == "READY" and version.tags["validation_status"] == "passed"


def test_server_gone_longer_than_the_budget_fails_the_step_in_one_line(server, tmp_path, uci_file, tiny_model,
                                                                     tiny_checks):
    client = MlflowClient(server.uri)
    budget = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # about 2 s
    main = start_main(server, tmp_path, "gone", tiny_params(uci_file, tiny_model, tiny_checks,
                                                            registered_model_name="gone"), env=budget)
    train = wait_for_training(client, "gone", main)
    server.stop()
    output = main.communicate(timeout=300)[0]
    assert main.returncode != 0
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 2, output[-3000:]  # train's, then main's
    assert all(line.startswith(f"Error: lost the MLflow tracking server at {server.uri} (") for line in errors)
    # The steps print no traceback. MLflow's own `mlflow run` around main then fails to mark main's run
    # FAILED and prints one of its own (the README says so).
    assert f'File "{PROJECT_DIR / "steps"}' not in output
    server.start()
    assert client.search_model_versions("name = 'gone'") == []  # nothing registered
    assert client.get_run(train.info.run_id).info.status == "RUNNING"  # left for the next main to mark KILLED
