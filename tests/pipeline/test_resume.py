"""A training killed mid-way, through a tracking server on loopback: the next `main` marks the dead
runs KILLED and its `train` goes on from the last epoch logged, ending where an uninterrupted
training ends."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from mlflow.tracking import MlflowClient

from tests.helpers import mlflow_run, params, tiny_params

pytestmark = pytest.mark.slow

EXPERIMENT = "Spam Classifier Training"
EPOCHS = 8  # long enough to be killed mid-way


@pytest.fixture
def client(server):
    return MlflowClient(server)


def runs(client, filter_string):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], filter_string) if experiment else []


def kill_when_an_epoch_is_logged(main, client):
    """SIGKILL to the whole pipeline's process group (`mlflow run`, `main` and the `train` step in
    it), as a preempted machine ends them: nothing is left to mark a run finished or failed."""
    deadline = time.time() + 300
    while not runs(client, "tags.resumable_epoch LIKE '%'"):
        assert time.time() < deadline and main.poll() is None, main.communicate()
        time.sleep(0.1)
    assert any("steps.train" in p.cmdline() for p in psutil.Process(main.pid).children(recursive=True))
    os.killpg(main.pid, signal.SIGKILL)


def test_main_resumes_a_killed_training_and_ends_like_an_uninterrupted_one(repo, server, client, tmp_path, uci_file,
                                                                            tiny_model, tiny_checks):
    # From a clean commit (the git server's), so that the second main reuses prepare and tokenize:
    # a train resumes only a run of the same params, the tokenized data's URI among them.
    args = tiny_params(uci_file, tiny_model, tiny_checks, epochs=EPOCHS, registered_model_name="resumed")
    killed_main = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "run", repo["url"], "--env-manager", "local", "--experiment-name",
         EXPERIMENT, *args], cwd=tmp_path, env={**os.environ, "MLFLOW_TRACKING_URI": server},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    kill_when_an_epoch_is_logged(killed_main, client)
    assert killed_main.wait(timeout=60) == -signal.SIGKILL
    [killed] = runs(client, "tags.resumable_epoch LIKE '%' AND attributes.status = 'RUNNING'")  # a zombie
    assert len(runs(client, "attributes.status = 'RUNNING'")) == 2  # and so is its main
    epoch = int(killed.data.tags["resumable_epoch"])
    assert epoch < EPOCHS

    again = mlflow_run(server, tmp_path, repo["url"], EXPERIMENT, *args)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"run {killed.info.run_id} was left RUNNING by a process that is gone: marked KILLED" in again.stdout
    assert client.get_run(killed.info.run_id).info.status == "KILLED"
    [resumed] = runs(client, f"tags.resumed_from_run_id = '{killed.info.run_id}'")
    assert resumed.info.status == "FINISHED" and resumed.data.tags["resumed_from_epoch"] == str(epoch)
    assert len(client.get_metric_history(resumed.info.run_id, "eval_f1")) == EPOCHS - epoch  # only those left

    # The same training, never interrupted (resume=false also keeps it from resuming anything).
    tokenized = resumed.data.params["tokenized"]
    uninterrupted = mlflow_run(server, tmp_path, repo["url"], EXPERIMENT, "-e", "train", *params(
        tokenized=tokenized, model=tiny_model, epochs=EPOCHS, batch_size=8, learning_rate=3e-3, resume="false"))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    [reference] = runs(client, "params.resume = 'false'")
    for metric in ("eval_loss", "eval_f1", "eval_accuracy"):
        assert client.get_metric_history(resumed.info.run_id, metric)[-1].value == pytest.approx(
            client.get_metric_history(reference.info.run_id, metric)[-1].value, abs=1e-6), metric
