"""A tracking server that goes away in the middle of `train`: back within the retry budget, the
pipeline finishes with nothing lost; gone for longer, the step fails in one line naming the
server, and nothing is registered."""

import contextlib
import os
import subprocess
import sys
import time

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_DIR, children, tiny_params
from tests.servers import free_port, mlflow_server

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
    [parent] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id],
                                  "tags.`mlflow.project.entryPoint` = 'main'")
    return parent


def recorded(client, parent):
    """What the pipeline's runs hold, by step: param names, each metric's number of logged steps
    (system metrics aside: the clock decides how many samples there are) and artifact files."""
    def files(run_id, path=None):
        for item in client.list_artifacts(run_id, path):
            yield from files(run_id, item.path) if item.is_dir else [item.path]

    return {step: (sorted(run.data.params),
                   {key: len(client.get_metric_history(run.info.run_id, key))
                    for key in run.data.metrics if not key.startswith("system/")},
                   sorted(files(run.info.run_id)))
            for step, run in {"main": parent, **children(client, parent)}.items()}


def test_server_restarted_mid_training_loses_nothing(server, tmp_path, uci_file, tiny_model, tiny_checks):
    # The same pipeline at the same time on a server of its own that stays up: the reference.
    steady_server = RestartableServer(tmp_path / "steady")
    steady_server.folder.mkdir()
    steady_server.start()
    try:
        mains = {experiment: start_main(where, tmp_path, experiment, tiny_params(
                     uci_file, tiny_model, tiny_checks, registered_model_name=experiment))
                 for experiment, where in (("steady", steady_server), ("restarted", server))}
        client = MlflowClient(server.uri)
        wait_for_training(client, "restarted", mains["restarted"])
        server.stop()
        stopped = time.time()
        time.sleep(OUTAGE_S)
        server.start()
        for main in mains.values():
            output = main.communicate(timeout=600)[0]
            assert main.returncode == 0, output[-3000:]
        steady_client = MlflowClient(steady_server.uri)
        steady, restarted = main_run(steady_client, "steady"), main_run(client, "restarted")
        train = children(client, restarted)["train"]
        assert train.info.end_time / 1000 > stopped + OUTAGE_S  # the outage fell inside the training
        assert recorded(client, restarted) == recorded(steady_client, steady)
        assert restarted.data.metrics["test_f1"] == steady.data.metrics["test_f1"]  # the same seed, the same model
    finally:
        steady_server.stop()
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
