"""The Optuna search: trials as nested runs, the best trial recorded, a study shared by processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from steps import tune
from tests.helpers import PROJECT_DIR, runs_in

pytestmark = pytest.mark.slow


def runs_of(tracking, filter_string=""):
    return runs_in(tracking, "tests", filter_string)


def test_search_logs_each_trial_as_a_nested_run_and_the_best(tracking, tokenized, tiny_model):
    result = CliRunner().invoke(tune.main, ["--tokenized", tokenized, "--model", str(tiny_model), "--trials", "3"])
    assert result.exit_code == 0, result.output
    [parent] = runs_of(tracking, "params.trials = '3'")
    trials = runs_of(tracking, f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(run.info.run_name for run in trials) == ["trial 0", "trial 1", "trial 2"]
    for trial in trials:
        assert set(tune.suggest(optuna.trial.FixedTrial(
            {"learning_rate": 1e-4, "batch_size": 8, "epochs": 1, "warmup_ratio": 0, "weight_decay": 0}), 0)) \
            <= set(trial.data.params)
        assert trial.data.tags["trial_state"] in ("complete", "pruned") and trial.info.status == "FINISHED"
        assert len(tracking.get_metric_history(trial.info.run_id, "eval_f1")) >= 1  # per-epoch validation curve
    complete = [t for t in trials if t.data.tags["trial_state"] == "complete"]
    [best] = [t for t in trials if t.info.run_name == f"trial {parent.data.tags['best_trial_number']}"]
    assert best in complete
    assert parent.data.metrics["best_validation_f1"] == best.data.metrics["best_validation_f1"] == \
        max(t.data.metrics["best_validation_f1"] for t in complete)
    assert parent.data.params["best_learning_rate"] == best.data.params["learning_rate"]
    best_params = json.loads(Path(tracking.download_artifacts(parent.info.run_id, "best_params.json")).read_text())
    assert set(best_params) == {"learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay"}
    assert parent.data.tags["output_uri"] == f"runs:/{parent.info.run_id}/best_params.json"
    assert "search/history.png" in {a.path for a in tracking.list_artifacts(parent.info.run_id, "search")}
    assert "test" not in {key.split("_")[0] for run in trials for key in run.data.metrics}  # validation only


def test_two_processes_on_one_storage_split_the_trials_of_one_study(postgres, tracking, tokenized, tiny_model):
    # a team's database, through the runtime's own driver (requirements.txt); Optuna's sqlite
    # storage takes the same path through the step
    storage = postgres("optuna")
    command = [sys.executable, "-m", "steps.tune", "--tokenized", tokenized, "--model", str(tiny_model),
               "--trials", "4", "--tune-storage", storage, "--study-name", "shared"]
    optuna.create_study(study_name="shared", storage=storage, direction="maximize")  # no race to create it
    environment = {**os.environ, "MLFLOW_EXPERIMENT_NAME": "tests"}
    workers = [subprocess.Popen(command, cwd=PROJECT_DIR, env=environment, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outputs
    study = optuna.load_study(study_name="shared", storage=storage)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    finished = [t for t in study.trials if t.state in states]
    # MaxTrialsCallback stops both once 4 have finished; a trial already under way in the other may still end.
    assert 4 <= len(finished) <= 5
    parents = runs_of(tracking, "tags.study_name = 'shared'")
    trial_counts = [len(runs_of(tracking, f"tags.mlflow.parentRunId = '{p.info.run_id}'")) for p in parents]
    assert len(parents) == 2 and all(count >= 1 for count in trial_counts) and sum(trial_counts) == len(finished)
    # each process records the study's best when it stopped; the later one saw every trial
    assert max(p.data.metrics["best_validation_f1"] for p in parents) == study.best_value
