"""Batch scoring: both engines give the same rows, in input order, with the input's columns."""

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from transformers import AutoModelForSequenceClassification

from steps import predict, register
from steps.core.task import Task, write_task

pytestmark = pytest.mark.slow

SMS = Task(("ham", "spam"), "spam", examples=("see you at lunch", "WIN a prize"))


@pytest.fixture(scope="module")
def registered(tmp_path_factory, tiny_model):
    """A sqlite store holding `tiny-classifier` version 1: the tiny BERT with a (random) classification head."""
    folder = tmp_path_factory.mktemp("predict")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.MlflowClient(uri).create_experiment("predict")
    classifier = AutoModelForSequenceClassification.from_pretrained(
        str(tiny_model), num_labels=2, label2id=SMS.label2id, id2label=SMS.id2label)
    classifier.save_pretrained(folder / "checkpoint")
    write_task(SMS, folder / "checkpoint")
    (folder / "checkpoint").joinpath("tokenizer.json").write_bytes((tiny_model / "tokenizer.json").read_bytes())
    for name in ("tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (tiny_model / name).exists():
            (folder / "checkpoint" / name).write_bytes((tiny_model / name).read_bytes())
    with mlflow.start_run(experiment_id=experiment_id):
        classifier = register.build_pipeline(str(folder / "checkpoint"), 16, "cpu")
        info = mlflow.transformers.log_model(name="model",
                                             **register.model_arguments(classifier, SMS, 16, "cpu", "fp32"))
    mlflow.register_model(info.model_uri, "tiny-classifier")
    yield {"uri": uri, "folder": folder, "experiment_id": experiment_id}
    mlflow.set_tracking_uri(None)


@pytest.fixture
def messages_file(registered, sms_rows):
    """Labelled messages with an extra column, as CSV."""
    frame = pd.DataFrame({"id": [f"m{i:03d}" for i in range(len(sms_rows))], "message": [t for _, t in sms_rows],
                          "label": [label for label, _ in sms_rows]})
    path = registered["folder"] / "messages.csv"
    frame.to_csv(path, index=False)
    return path, frame


def run_predict(registered, monkeypatch, *args):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registered["uri"])
    # set_experiment exports MLFLOW_EXPERIMENT_ID; set through monkeypatch first, it is removed after the test
    # (a later `mlflow run --experiment-name` would otherwise get both)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", registered["experiment_id"])
    mlflow.set_experiment(experiment_id=registered["experiment_id"])
    result = CliRunner().invoke(predict.main, [str(a) for a in args])
    return result, result.output.strip().splitlines()


def test_both_engines_score_every_row_in_order_and_agree(registered, messages_file, monkeypatch, tmp_path):
    path, frame = messages_file
    outputs = {}
    for engine, name in (("pandas", "scored.parquet"), ("spark", "scored.csv")):
        result, lines = run_predict(registered, monkeypatch, "--model-uri", "models:/tiny-classifier/1",
                                    "--input", path, "--output", tmp_path / name, "--engine", engine,
                                    "--class-scores", "true")
        assert result.exit_code == 0, result.output
        [summary] = [line for line in lines if " messages scored with " in line]
        assert summary.startswith(f"{len(frame)} messages scored with tiny-classifier version 1 ({engine}, ")
        assert "against its labels: accuracy" in summary
        outputs[engine] = (pd.read_parquet if name.endswith(".parquet") else pd.read_csv)(tmp_path / name)
    pandas_out, spark_out = outputs["pandas"], outputs["spark"]
    assert list(pandas_out.columns) == ["id", "message", "label", "predicted_label", "score", "score_ham",
                                        "score_spam"]
    assert pandas_out[["id", "message", "label"]].equals(frame)  # input order and columns kept
    assert set(pandas_out["predicted_label"]) <= {"ham", "spam"}
    assert pandas_out["predicted_label"].tolist() == spark_out["predicted_label"].tolist()
    for column in ("score", "score_ham", "score_spam"):
        assert (pandas_out[column] - spark_out[column]).abs().max() < 1e-5
    assert ((pandas_out["score_ham"] + pandas_out["score_spam"] - 1).abs() < 1e-5).all()
    assert (pandas_out["score"] == pandas_out[["score_ham", "score_spam"]].max(axis=1)).all()
    served = mlflow.pyfunc.load_model("models:/tiny-classifier/1").predict(frame["message"].tolist()[:5])
    assert served["label"].tolist() == pandas_out["predicted_label"].tolist()[:5]  # the served model's own answers
    assert (served["score"] - pandas_out["score"][:5]).abs().max() < 1e-5
    runs = mlflow.MlflowClient(registered["uri"]).search_runs([registered["experiment_id"]], "params.engine != ''")
    for run in runs:
        assert run.data.tags["model_version"] == "1" and run.data.metrics["rows"] == len(frame)
        assert run.data.metrics["messages_per_second"] > 0 and "accuracy" in run.data.metrics
        assert run.data.tags["data_digest"] == run.inputs.dataset_inputs[0].dataset.digest


@pytest.mark.parametrize("content, args, fragments", [
    (None, [], ["does not exist", "pass an existing file"]),
    ("kind,words\nham,hello\n", [], ["no text column found (columns: kind, words)", "set text_column"]),
    ("", [], ["cannot read", ".csv"]),
    ("text,label\n", [], ["holds no messages"]),
    ("text\nhello\n", ["--model-uri", "models:/no-such-model/1"],
     ["models:/no-such-model/1", "name=no-such-model not found"]),
    ("text\nhello\n", ["--model-uri", "models:/tiny-classifier@nobody"], ["no registered model at", "@nobody"]),
])
def test_bad_input_is_one_line(registered, monkeypatch, tmp_path, content, args, fragments):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content)
    result, lines = run_predict(registered, monkeypatch, "--model-uri", "models:/tiny-classifier/1", "--input", path,
                                "--output", tmp_path / "out.parquet", *args)
    assert result.exit_code == 1, result.output
    assert lines[-1].startswith("Error: ") and all(fragment in lines[-1] for fragment in fragments), lines[-1]
    assert not (tmp_path / "out.parquet").exists()
