"""train on several processes and machines (CPU, gloo): one run, curves logged once, one checkpoint,
and a dead process failing the step in one line."""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from transformers import AutoModelForSequenceClassification

from steps.plumbing import launch
from steps.core.errors import PipelineError
from tests.helpers import PROJECT_DIR, free_port, mlflow_run

pytestmark = pytest.mark.slow

EPOCHS = 3
# 2 processes of 4 messages make the same batches of 8 as one process of 8: the curves should agree.
RECIPE = ["--epochs", EPOCHS, "--learning-rate", 3e-3, "--seed", 22]


# One thread a process: the tests' "machines" share this one's cores.
ENV = {"OMP_NUM_THREADS": "1", "MLFLOW_EXPERIMENT_NAME": "tests"}


def train(*args, env=None):
    return subprocess.run([sys.executable, "-m", "steps.train", *map(str, args)], cwd=PROJECT_DIR,
                          env={**os.environ, **ENV, **(env or {})}, capture_output=True, text=True, timeout=600)


def train_runs(tracking):
    experiment = tracking.get_experiment_by_name("tests").experiment_id
    runs = tracking.search_runs([experiment], order_by=["attributes.start_time ASC"])
    return [run for run in runs if "num_processes" in run.data.params]


def last(tracking, run, metric):
    return tracking.get_metric_history(run.info.run_id, metric)[-1].value


def test_two_processes_log_one_run_like_one_process(tracking, tokenized, tiny_model, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")  # `mlflow run` takes the experiment by name
    one = train("--tokenized", tokenized, "--model", tiny_model, *RECIPE, "--batch-size", 8)
    assert one.returncode == 0, one.stderr[-3000:]
    two = mlflow_run(os.environ["MLFLOW_TRACKING_URI"], tmp_path, PROJECT_DIR, "tests", "-e", "train",
                     "-P", f"tokenized={tokenized}", "-P", f"model={tiny_model}", "-P", f"epochs={EPOCHS}",
                     "-P", "learning_rate=3e-3", "-P", "batch_size=4", "-P", "num_processes=2",
                     "-P", f"main_process_port={free_port()}")
    assert two.returncode == 0, two.stderr[-3000:]

    single, double = train_runs(tracking)
    assert double.info.status == "FINISHED" and double.data.params["num_processes"] == "2"
    assert double.data.params["effective_batch_size"] == single.data.params["effective_batch_size"] == "8"
    assert len(tracking.get_metric_history(double.info.run_id, "eval_f1")) == EPOCHS  # rank 0 alone logs
    assert sum("validation:" in line for line in two.stdout.splitlines()) == EPOCHS
    assert last(tracking, double, "eval_loss") == pytest.approx(last(tracking, single, "eval_loss"), abs=0.1)
    assert last(tracking, double, "eval_accuracy") == pytest.approx(last(tracking, single, "eval_accuracy"), abs=0.1)
    [checkpoint] = [a.path for a in tracking.list_artifacts(double.info.run_id) if a.path == "checkpoint"]
    folder = tracking.download_artifacts(double.info.run_id, checkpoint, str(tmp_path))
    assert AutoModelForSequenceClassification.from_pretrained(folder).config.id2label == {0: "ham", 1: "spam"}
    assert double.data.tags["output_uri"] == f"runs:/{double.info.run_id}/checkpoint"


def test_two_processes_stop_early_together(tracking, tokenized, tiny_model):
    """A learning rate too small to move the weights: the validation F1 never improves, so with
    patience 2 both processes stop after epoch 3 (had one gone on, the step would hang or fail)."""
    result = train("--tokenized", tokenized, "--model", tiny_model, "--epochs", 6, "--learning-rate", 1e-12,
                   "--early-stopping-patience", 2, "--batch-size", 4, "--num-processes", 2,
                   "--main-process-port", free_port())
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = train_runs(tracking)
    assert run.data.metrics["epochs_run"] == 3 and run.data.metrics["best_epoch"] == 1
    assert len(tracking.get_metric_history(run.info.run_id, "eval_f1")) == 3
    assert "best validation F1" in result.stdout and "at epoch 1 of 3 run" in result.stdout

def test_two_machines_meet_on_loopback_and_machine_0_logs_once(tracking, tokenized, tiny_model):
    machines = ["--tokenized", tokenized, "--model", tiny_model, *RECIPE, "--batch-size", 4, "--num-processes", 2,
                "--num-machines", 2, "--main-process-ip", "127.0.0.1", "--main-process-port", free_port()]
    second = subprocess.Popen([sys.executable, "-m", "steps.train", *map(str, machines), "--machine-rank", "1"],
                              cwd=PROJECT_DIR, env={**os.environ, **ENV},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first = train(*machines, "--machine-rank", 0)
    second_output, _ = second.communicate(timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second_output[-3000:]
    assert "machine 1 of 2 finished its part" in second_output
    [run] = train_runs(tracking)
    assert run.data.params["machine_rank"] == "0" and run.data.params["num_machines"] == "2"
    assert len(tracking.get_metric_history(run.info.run_id, "eval_f1")) == EPOCHS
    assert "checkpoint" in [a.path for a in tracking.list_artifacts(run.info.run_id)]


def test_another_machine_under_mlflow_run_would_log_a_second_run(tracking, tokenized, tiny_model):
    result = train("--tokenized", tokenized, "--model", tiny_model, "--num-processes", 2,
                   "--num-machines", 2, "--machine-rank", 1, env={"MLFLOW_RUN_ID": "0" * 32})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: machine_rank 1 would log a second run")


def test_a_killed_process_fails_the_step_in_one_line_without_a_checkpoint(tracking, tokenized, tiny_model):
    command = [sys.executable, "-m", "steps.train", "--tokenized", tokenized, "--model", str(tiny_model),
               "--epochs", "100", "--batch-size", "2", "--num-processes", "2", "--main-process-port", str(free_port())]
    step = subprocess.Popen(command, cwd=PROJECT_DIR, env={**os.environ, **ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (runs := train_runs(tracking)) or "loss" not in runs[0].data.metrics:  # training has started
        assert time.time() < deadline and step.poll() is None, step.communicate()
        time.sleep(0.5)
    workers = [p for p in psutil.Process(step.pid).children() if "multiprocessing.spawn" in " ".join(p.cmdline())]
    assert len(workers) == 2
    workers[-1].send_signal(signal.SIGKILL)
    _, stderr = step.communicate(timeout=120)

    assert step.returncode == 1
    # (Python's resource tracker may still warn of the dead process's semaphore after it.)
    assert [line for line in stderr.splitlines() if line.startswith("Error: ")] == [
        "Error: training process of rank 1 failed (killed by SIGKILL)"]
    [run] = train_runs(tracking)
    assert run.info.status == "FAILED" and run.data.tags["error"].startswith("training process of rank 1 failed")
    assert "checkpoint" not in [a.path for a in tracking.list_artifacts(run.info.run_id)]


@pytest.mark.parametrize("settings, fragment", [
    ({"num_processes": 3, "num_machines": 2}, "num_processes 3 is not a multiple of num_machines 2"),
    ({"num_processes": 2, "num_machines": 2, "machine_rank": 2}, "machine_rank 2 is not between 0 and"),
])
def test_impossible_process_settings_are_named(settings, fragment):
    with pytest.raises(PipelineError, match=fragment):
        launch.Processes(**settings)


def test_processes_share_the_cores_of_their_machine():
    assert launch.Processes(8, 2).per_machine == 4
    assert launch.cpu_threads(per_machine=os.cpu_count() * 2) == 1
    assert launch.cpu_threads(per_machine=1) == os.cpu_count()
