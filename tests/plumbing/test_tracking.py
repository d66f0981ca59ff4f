"""A launched training process joins the step's run it is handed, logs into it, and leaves it
RUNNING for the step that owns it."""

import mlflow
import pytest

from steps.plumbing import tracking as runs


def test_a_joined_run_takes_the_logs_and_stays_running(tracking):
    step = tracking.create_run(mlflow.get_experiment_by_name("tests").experiment_id)

    with runs.joined_run((mlflow.get_tracking_uri(), step.info.run_id)):
        assert mlflow.active_run().info.run_id == step.info.run_id  # the Trainer's callback logs here
        mlflow.log_metric("eval_f1", 0.5)

    assert mlflow.active_run() is None  # nothing left for the process's exit to end as FINISHED
    after = tracking.get_run(step.info.run_id)
    assert after.info.status == "RUNNING" and after.data.metrics["eval_f1"] == 0.5


def test_a_failing_process_hands_the_run_back_too(tracking):
    step = tracking.create_run(mlflow.get_experiment_by_name("tests").experiment_id)

    with pytest.raises(RuntimeError), runs.joined_run((mlflow.get_tracking_uri(), step.info.run_id)):
        raise RuntimeError("out of memory")

    assert mlflow.active_run() is None and tracking.get_run(step.info.run_id).info.status == "RUNNING"


def test_nothing_to_join_leaves_the_process_as_it_was(tracking):
    with runs.joined_run(None):
        assert mlflow.active_run() is None
