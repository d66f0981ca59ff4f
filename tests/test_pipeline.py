"""`mlflow run` of the whole project, in a subprocess, against a temporary sqlite store."""

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import PROJECT_DIR, STEPS, error_line, mlflow_run, params, tiny_params

pytestmark = pytest.mark.slow

EXPERIMENT = "Spam Classifier Training"


def run_project(store, *args):
    """`mlflow run` of this project from a folder that is not the project's."""
    return mlflow_run(store["uri"], store["dir"], PROJECT_DIR, EXPERIMENT, *args)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store")
    return {"dir": folder, "uri": f"sqlite:///{folder / 'mlflow.db'}"}


@pytest.fixture(scope="module")
def client(store):
    mlflow.set_tracking_uri(store["uri"])
    yield MlflowClient(store["uri"])
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def pipeline(store, client, uci_file, tiny_model, tiny_checks):
    result = run_project(store, *tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["mlflow.project.entryPoint"]: r for r in runs if r is not parent}
    return {"result": result, "parent": parent, "children": children}


def test_one_parent_with_five_finished_children_in_order(pipeline):
    parent, children = pipeline["parent"], pipeline["children"]
    assert parent.info.status == "FINISHED" and parent.data.tags["mlflow.project.entryPoint"] == "main"
    assert re.fullmatch(r"model\d*/tiny-bert on data\d*/SMSSpamCollection, 5 epochs, seed 22", parent.info.run_name)
    assert list(children) == STEPS
    for step, child in children.items():
        assert child.info.status == "FINISHED", step
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.experiment_id == parent.info.experiment_id
        assert parent.data.tags[f"{step}_run_id"] == child.info.run_id


def test_each_step_reads_the_previous_steps_output_uri(pipeline):
    runs = pipeline["children"]
    output = {step: run.data.tags["output_uri"] for step, run in runs.items()}
    assert output["prepare"] == f"runs:/{runs['prepare'].info.run_id}/data"
    assert runs["tokenize"].data.params["data"] == output["prepare"]
    assert runs["train"].data.params["tokenized"] == output["tokenize"]
    assert runs["register"].data.params["checkpoint"] == output["train"]
    assert runs["validate"].data.params["model_uri"] == output["register"] == "models:/spam-classifier/1"
    assert runs["validate"].data.params["test_data"] == output["prepare"] + "/test.parquet"


def test_train_logged_curves_and_a_loadable_checkpoint(pipeline, client):
    train = pipeline["children"]["train"]
    assert len(client.get_metric_history(train.info.run_id, "loss")) > 1
    assert len(client.get_metric_history(train.info.run_id, "eval_f1")) == 5  # one per epoch
    assert train.data.params["learning_rate"] == "0.003"  # the step's own params, not clobbered by the Trainer
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(train.data.metrics)
    files = {a.path.split("/")[-1] for a in client.list_artifacts(train.info.run_id, "checkpoint")}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert train.data.tags["resumable_epoch"] == "5"  # each epoch's resumable checkpoint was logged...
    assert "resumable" not in [a.path for a in client.list_artifacts(train.info.run_id)]  # ...and dropped at the end


def test_train_prints_where_it_is_and_the_time_left(pipeline):
    out = pipeline["result"].stdout
    assert re.search(r"^epoch 1/5 step 1/\d+ \(\d+% of training\), loss \d\.\d{4}; 0:00:0\d elapsed, "
                     r"about 0:\d\d:\d\d left$", out, re.MULTILINE), out[-3000:]
    validation_lines = r"^epoch \d/5 validation: loss \d\.\d+, accuracy \d\.\d+, f1 \d\.\d+, macro_f1 \d\.\d+$"
    assert len(re.findall(validation_lines, out, re.MULTILINE)) == 5
    assert "{'loss'" not in out  # no raw log dicts


def test_version_registered_with_aliases_and_lineage(pipeline, client):
    children = pipeline["children"]
    version = client.get_model_version_by_alias("spam-classifier", "champion")
    assert str(version.version) == "1"
    assert str(client.get_model_version_by_alias("spam-classifier", "candidate").version) == "1"
    assert version.tags["train_run_id"] == children["train"].info.run_id
    assert version.tags["data_digest"] == children["prepare"].data.tags["data_digest"]
    assert version.tags["validation_status"] == "passed"
    assert len(version.tags["git_commit"]) == 40 or not (PROJECT_DIR / ".git").exists()


def test_parent_records_metrics_and_the_summary_says_how_to_serve(pipeline):
    parent, validate = pipeline["parent"], pipeline["children"]["validate"]
    assert parent.data.metrics["test_f1"] == validate.data.metrics["test_f1"] >= 0.7
    assert parent.data.metrics["baseline_f1"] == validate.data.metrics["baseline_f1"] >= 0.9
    assert 0.9 <= validate.data.metrics["baseline_accuracy"] <= 1
    assert validate.data.metrics["test_f1_score"] == validate.data.metrics["test_f1"] == \
        validate.data.metrics["test_f1_spam"]  # MLflow's name and ours: spam's F1
    assert {f"{prefix}_{name}_{label}" for prefix in ("test", "baseline") for name in ("precision", "recall", "f1")
            for label in ("ham", "spam")} <= set(validate.data.metrics)
    assert parent.data.tags["registered_model_uri"] == "models:/spam-classifier/1"
    out = pipeline["result"].stdout
    assert "models:/spam-classifier/1 is @candidate; @champion is version 1" in out
    assert "Pipeline finished:" in out and "mlflow models serve -m models:/spam-classifier@champion" in out
    said = out + pipeline["result"].stderr
    assert not any(warning in said for warning in ("model card could not be retrieved", "license information",
                                                   "will override the inference configuration"))
    artifacts = {a.path for a in MlflowClient().list_artifacts(validate.info.run_id)}
    assert {"test_confusion_matrix.png", "baseline_confusion_matrix.png", "misclassified.json",
            "behaviour_checks.json"} <= artifacts


def test_validate_logs_check_pass_rates_per_capability_and_the_table(pipeline, client):
    validate = pipeline["children"]["validate"]
    rates = {key: value for key, value in validate.data.metrics.items() if key.startswith("checks_pass_rate")}
    assert set(rates) == {"checks_pass_rate", "checks_pass_rate_prize_spam", "checks_pass_rate_plans_ham"}
    assert rates["checks_pass_rate"] == (rates["checks_pass_rate_prize_spam"] + rates["checks_pass_rate_plans_ham"]) / 2
    logged = json.loads(Path(client.download_artifacts(validate.info.run_id, "behaviour_checks.json")).read_text())
    table = pd.DataFrame(logged["data"], columns=logged["columns"])
    assert list(table.columns) == ["text", "capability", "expected", "predicted", "passed", "score_ham", "score_spam"]
    assert len(table) == 6 and table["passed"].mean() == rates["checks_pass_rate"] >= 0.9


def test_champion_loads_through_pyfunc_and_says_ham_or_spam(pipeline):
    model = mlflow.pyfunc.load_model("models:/spam-classifier@champion")
    predictions = model.predict(["Are we still on for lunch tomorrow, John?",
                                 "WINNER! Click HERE to claim your FREE cash prize now!"])
    assert predictions["label"].tolist() == ["ham", "spam"]


def test_main_with_tune_trials_trains_with_the_best_trial(pipeline, store, client, uci_file, tiny_model, tiny_checks):
    # The search's learning rates are too small for the tiny model to learn much: its gate is off.
    result = run_project(store, *tiny_params(uci_file, tiny_model, tiny_checks, tune_trials=2, use_cache="false",
                                             registered_model_name="tuned", min_accuracy=0, min_f1=0,
                                             min_check_pass_rate=0), "--run-name", "tuned")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [parent] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'tuned'")
    steps = {r.data.tags["mlflow.project.entryPoint"]: r for r in client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
        order_by=["attributes.start_time ASC"])}
    assert list(steps) == ["prepare", "tokenize", "tune", "train", "register", "validate"]
    tune, train = steps["tune"], steps["train"]
    assert tune.data.params["tokenized"] == steps["tokenize"].data.tags["output_uri"]
    assert len(client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{tune.info.run_id}'")) == 2
    for key in ("learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay"):
        assert float(train.data.params[key]) == float(tune.data.params[f"best_{key}"]), key


def validate_version(store, pipeline, version, checks, **gate):
    return run_project(store, "-e", "validate", *params(
        model_uri=f"models:/spam-classifier/{version}", checks=checks, min_accuracy=0.5, min_f1=0.5,
        **{"min_margin_over_baseline": -1, **gate},
        test_data=pipeline["children"]["prepare"].data.tags["output_uri"] + "/test.parquet"))


def test_failed_checks_reject_the_version_and_leave_the_champion(pipeline, store, client, tmp_path):
    checkpoint = pipeline["children"]["train"].data.tags["output_uri"]
    result = run_project(store, "-e", "register", *params(checkpoint=checkpoint))
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(client.get_model_version_by_alias("spam-classifier", "candidate").version) == "2"

    wrong = tmp_path / "wrong.csv"  # no capability column: one group
    wrong.write_text("text,label\nAre we still on for lunch tomorrow?,spam\nWINNER! Click HERE for a FREE car,spam\n")
    result = validate_version(store, pipeline, 2, wrong, min_check_pass_rate=0.6)
    assert result.returncode != 0
    assert error_line(result) == ("Error: spam-classifier version 2 not promoted: behaviour checks passed 1/2 (50.0%) "
                                  "< min_check_pass_rate 0.6; failed: 'Are we still on for lunch tomorrow?...' "
                                  "(all, expected spam); champion stays at version 1")
    assert str(client.get_model_version_by_alias("spam-classifier", "champion").version) == "1"
    version = client.get_model_version("spam-classifier", "2")
    assert version.tags["validation_status"] == "rejected"
    assert "min_check_pass_rate 0.6" in version.tags["rejection_reason"]

    # The same failure at a pass rate the gate accepts: promoted.
    result = validate_version(store, pipeline, 2, wrong, min_check_pass_rate=0.5)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert str(client.get_model_version_by_alias("spam-classifier", "champion").version) == "2"


def test_a_version_below_the_baseline_is_rejected(pipeline, store, client, tiny_checks):
    champion = client.get_model_version_by_alias("spam-classifier", "champion").version
    result = validate_version(store, pipeline, 1, tiny_checks, min_margin_over_baseline=0.5)  # F1 above 1: never
    assert result.returncode != 0
    assert re.fullmatch(r"Error: spam-classifier version 1 not promoted: test spam F1 \d\.\d{4} < baseline "
                        r"\(TF-IDF \+ linear SVM\) F1 \d\.\d{4} \+ min_margin_over_baseline 0\.5; "
                        r"champion stays at version \d+", error_line(result)), error_line(result)
    assert client.get_model_version_by_alias("spam-classifier", "champion").version == champion


@pytest.mark.parametrize("bad, failing_step, fragment", [
    ({"dataset": "/nonexistent/sms.csv"}, "prepare", "data file /nonexistent/sms.csv does not exist"),
    ({"model": "distilbert/distilbert-base-uncased"}, "tokenize", "pass a local path instead"),
])
def test_bad_input_fails_the_step_and_the_parent_and_registers_nothing(
        pipeline, store, client, uci_file, tiny_model, tiny_checks, bad, failing_step, fragment):
    versions_before = len(client.search_model_versions("name='spam-classifier'"))
    result = run_project(store, *tiny_params(uci_file, tiny_model, tiny_checks, use_cache="false", **bad),
                        "--run-name", f"bad-{failing_step}")
    assert result.returncode != 0
    assert error_line(result).startswith(f"Error: step {failing_step} failed (run ") and fragment in error_line(result)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [parent] = client.search_runs([experiment.experiment_id], f"attributes.run_name = 'bad-{failing_step}'")
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert parent.info.status == "FAILED"
    assert [c.data.tags["mlflow.project.entryPoint"] for c in children] == STEPS[:STEPS.index(failing_step) + 1][::-1]
    assert {c.data.tags["mlflow.project.entryPoint"]: c.info.status for c in children}[failing_step] == "FAILED"
    assert len(client.search_model_versions("name='spam-classifier'")) == versions_before
