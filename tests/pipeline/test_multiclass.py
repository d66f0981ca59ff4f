"""Any label set through the same steps: three kinds of support ticket through `mlflow run` of
main, and a binary task whose labels are not ham/spam and one with integer labels through the
steps in-process; each ends with a champion that answers the task's class names."""

import json
import re
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from steps import predict, prepare, register, tokenize, train, validate
from tests.helpers import PROJECT_DIR, mlflow_run, output_of, params, runs_in

pytestmark = pytest.mark.slow

KINDS = ["billing", "bug", "praise"]
# The tiny model starts from random weights: a high learning rate and a few epochs teach it.
TINY_RECIPE = ["--epochs", 5, "--batch-size", 8, "--learning-rate", 3e-3]
LENIENT_GATE = ["--min-accuracy", 0.4, "--min-f1", 0.3, "--min-margin-over-baseline", -1]  # about labels, not quality


@pytest.fixture(scope="module")
def three_kinds(tmp_path_factory, ticket_file, ticket_model):
    folder = tmp_path_factory.mktemp("multiclass")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    result = mlflow_run(uri, folder, PROJECT_DIR, "tickets", *params(
        dataset=ticket_file, text_column="body", label_column="kind", model=ticket_model, epochs=5, batch_size=8,
        learning_rate=3e-3, min_accuracy=0.6, min_f1=0.5, min_margin_over_baseline=-1,
        registered_model_name="ticket-router"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    runs = runs_in(client, "tickets")
    yield {"uri": uri, "folder": folder, "client": client, "result": result,
           "steps": {r.data.tags["mlflow.project.entryPoint"]: r for r in runs}}
    mlflow.set_tracking_uri(None)


def test_three_kinds_end_with_a_champion_scored_by_macro_f1_with_each_class(three_kinds):
    client, steps = three_kinds["client"], three_kinds["steps"]
    assert str(client.get_model_version_by_alias("ticket-router", "champion").version) == "1"
    task = json.loads(Path(client.download_artifacts(steps["prepare"].info.run_id, "data/task.json")).read_text())
    assert task["labels"] == KINDS and task["positive_label"] is None and task["average"] == "macro"
    metrics = steps["validate"].data.metrics
    for prefix in ("test", "baseline"):
        per_class = [metrics[f"{prefix}_f1_{kind}"] for kind in KINDS]
        assert metrics[f"{prefix}_f1"] == pytest.approx(sum(per_class) / 3) == metrics[f"{prefix}_macro_f1"]
    assert metrics["test_f1"] >= 0.5 and 0 <= metrics["test_roc_auc"] <= 1  # one-vs-rest
    assert not any(key.startswith("checks_pass_rate") for key in metrics)  # no checks by default but for ham/spam
    artifacts = {a.path for a in client.list_artifacts(steps["validate"].info.run_id)}
    assert {"test_confusion_matrix.png", "test_per_class_metrics.json", "baseline_per_class_metrics.json"} <= artifacts
    assert {f"eval_f1_{kind}" for kind in KINDS} <= set(steps["train"].data.metrics)  # per epoch, per class
    out = three_kinds["result"].stdout
    assert re.search(r"^version 1: accuracy [\d.]+, .*macro_f1 [\d.]+, roc_auc [\d.]+ \(macro F1 as f1\); no checks; "
                     r"baseline F1 [\d.]+ \(macro F1 [+-][\d.]+ over TF-IDF \(95% interval [+-][\d.]+ to [+-][\d.]+\): "
                     r"(better|worse|not distinguishable)\); no champion yet; transformers: \d+ of \d+ test messages "
                     r"answered otherwise than by the fp32 checkpoint$", out, re.MULTILINE), out[-2000:]
    assert re.search(r"^  each label's F1, version / baseline: billing [\d.]+ / [\d.]+, bug [\d.]+ / [\d.]+, "
                     r"praise [\d.]+ / [\d.]+$", out, re.MULTILINE), out[-2000:]


def test_the_served_model_answers_the_three_names(three_kinds, ticket_rows):
    model = mlflow.pyfunc.load_model("models:/ticket-router@champion")
    texts = [text for _, text in ticket_rows[:30]]
    answers = model.predict(texts)
    assert list(answers.columns) == ["label", "score"] and set(answers["label"]) <= set(KINDS)
    assert (answers["label"] == [label for label, _ in ticket_rows[:30]]).mean() > 0.4  # chance: 1/3
    assert [column.name for column in model.metadata.get_output_schema().inputs] == ["label", "score"]
    assert model.metadata.metadata["classifier_task"]["labels"] == KINDS


def test_predict_gives_each_class_score_on_both_engines(three_kinds, ticket_rows, monkeypatch):
    tickets = three_kinds["folder"] / "labelled.csv"  # `label`: a column predict finds, so it scores against it
    pd.DataFrame({"id": range(len(ticket_rows)), "text": [text for _, text in ticket_rows],
                  "label": [label for label, _ in ticket_rows]}).to_csv(tickets, index=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", three_kinds["uri"])
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "tickets")
    frames = {}
    for engine in ("pandas", "spark"):
        output = three_kinds["folder"] / f"scored-{engine}.csv"
        result = CliRunner().invoke(predict.main, ["--model-uri", "models:/ticket-router@champion", "--input",
                                                   str(tickets), "--engine", engine, "--class-scores", "true",
                                                   "--output", str(output)])
        assert result.exit_code == 0, result.output
        assert "against its labels: accuracy" in result.output and "macro_f1" in result.output
        frames[engine] = pd.read_csv(output)
    pandas_out, spark_out = frames["pandas"], frames["spark"]
    scores = [f"score_{kind}" for kind in KINDS]
    assert list(pandas_out.columns) == ["id", "text", "label", "predicted_label", "score", *scores]
    assert pandas_out["id"].tolist() == list(range(len(pandas_out)))  # input order
    assert (pandas_out[scores].sum(axis=1) - 1).abs().max() < 1e-5
    assert (pandas_out[scores].idxmax(axis=1).str.removeprefix("score_") == pandas_out["predicted_label"]).all()
    assert pandas_out["predicted_label"].tolist() == spark_out["predicted_label"].tolist()
    assert (pandas_out[scores] - spark_out[scores]).abs().max().max() < 1e-5


def chain(tmp_path, data_file, model, *prepare_args):
    """prepare -> tokenize -> train -> register -> validate in this process; the task and the version."""
    data = output_of(prepare.main, "--dataset", data_file, *prepare_args)
    tokenized = output_of(tokenize.main, "--data", data, "--model", model, "--max-length", 32)
    checkpoint = output_of(train.main, "--tokenized", tokenized, "--model", model, *TINY_RECIPE)
    version = output_of(register.main, "--checkpoint", checkpoint, "--registered-model-name", "binary")
    assert output_of(validate.main, "--model-uri", version, "--test-data", f"{data}/test.parquet",
                     *LENIENT_GATE) == version
    task = json.loads(Path(mlflow.artifacts.download_artifacts(f"{data}/task.json")).read_text())
    return task, version


@pytest.mark.parametrize("labels, rows_of_each, expected_task", [
    # billing and praise, 40 and 25 rows: praise, the rarer, is the positive class
    ({"billing": "billing", "praise": "praise"}, {"billing": 40, "praise": 25},
     {"labels": ["billing", "praise"], "positive_label": "praise"}),
    ({"billing": 2, "bug": 10, "praise": 1}, {}, {"labels": ["1", "2", "10"], "positive_label": None}),
])
def test_other_label_sets_run_through_the_same_steps(tracking, tmp_path, ticket_rows, ticket_model, labels,
                                                     rows_of_each, expected_task):
    rows = []
    for kind in labels:
        rows += [(labels[kind], text) for label, text in ticket_rows if label == kind][:rows_of_each.get(kind)]
    path = tmp_path / "tickets.parquet"
    pd.DataFrame(rows, columns=["label", "text"]).to_parquet(path)
    task, version = chain(tmp_path, path, ticket_model)
    assert {key: task[key] for key in expected_task} == expected_task
    assert str(tracking.get_model_version_by_alias("binary", "champion").version) == version.rsplit("/", 1)[1]
    answers = mlflow.pyfunc.load_model(version).predict([text for _, text in rows[:20]])
    assert set(answers["label"]) <= set(expected_task["labels"])
    metrics = runs_in(tracking, "tests", "tags.output_uri LIKE 'models:/%' AND params.model_uri != ''")[0].data.metrics
    assert {f"test_f1_{label}" for label in expected_task["labels"]} <= set(metrics)
    if expected_task["positive_label"]:
        assert metrics["test_f1"] == metrics[f"test_f1_{expected_task['positive_label']}"]
