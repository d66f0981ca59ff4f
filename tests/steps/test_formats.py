"""Each serving format through register, validate and predict: the ONNX ones answer the test
messages as the transformers format does, and a broken ONNX artifact fails validate in one line."""

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from steps import predict, register, train, validate
from steps.served.text_classifier import ONNX_GRAPH
from tests.helpers import output_of, runs_in

pytestmark = pytest.mark.slow

FORMATS = ("transformers", "onnx", "onnx-int8")
GATE = ["--min-accuracy", 0.4, "--min-f1", 0.0, "--min-margin-over-baseline", -1, "--min-check-pass-rate", 0]


@pytest.fixture
def checkpoint(tracking, tokenized, tiny_model):
    """train's output on the fixture messages, and prepare's (the test split's folder)."""
    [prepared] = runs_in(tracking, "tests", "tags.output_uri LIKE '%/data'")
    return (output_of(train.main, "--tokenized", tokenized, "--model", tiny_model, "--epochs", 3, "--batch-size", 8,
                      "--learning-rate", 3e-3), prepared.data.tags["output_uri"])


def test_each_format_registers_passes_validate_and_scores_alike_on_both_engines(tracking, checkpoint, tiny_checks,
                                                                               tmp_path, uci_file):
    checkpoint_uri, data = checkpoint
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(f"{data}/test.parquet"))
    answers = {}
    for serving_format in FORMATS:
        version = output_of(register.main, "--checkpoint", checkpoint_uri, "--registered-model-name", "formats",
                            "--serving-format", serving_format)
        number = version.rsplit("/", 1)[1]
        assert tracking.get_model_version("formats", number).tags["serving_format"] == serving_format
        assert output_of(validate.main, "--model-uri", version, "--test-data", f"{data}/test.parquet",
                         "--checks", tiny_checks, *GATE) == version
        [validate_run] = runs_in(tracking, "tests", f"params.model_uri = '{version}'")
        assert validate_run.data.metrics["format_disagreements"] == 0  # the tiny model's margins are wide
        answers[serving_format] = mlflow.pyfunc.load_model(version).predict(test["text"].tolist())
        for engine in ("pandas", "spark"):
            output = tmp_path / f"{serving_format}-{engine}.csv"
            result = CliRunner().invoke(predict.main, ["--model-uri", version, "--input", str(uci_file), "--output",
                                                       str(output), "--engine", engine, "--class-scores", "true"])
            assert result.exit_code == 0, result.output
            answers[f"{serving_format} {engine}"] = pd.read_csv(output)
    reference = answers["transformers"]  # bf16 where the CPU has it, as register logs it by default
    for serving_format, tolerance in (("onnx", 0.02), ("onnx-int8", 0.05)):  # int8 weights move a tiny model more
        assert answers[serving_format]["label"].tolist() == reference["label"].tolist(), serving_format
        assert (answers[serving_format]["score"] - reference["score"]).abs().max() < tolerance, serving_format
    scores = ["score", "score_ham", "score_spam"]
    # int8's activations are quantized per batch, and the engines batch differently
    for serving_format, tolerance in (("transformers", 1e-5), ("onnx", 1e-5), ("onnx-int8", 0.005)):
        pandas_out, spark_out = answers[f"{serving_format} pandas"], answers[f"{serving_format} spark"]
        assert pandas_out["predicted_label"].tolist() == spark_out["predicted_label"].tolist() == \
            answers["transformers pandas"]["predicted_label"].tolist(), serving_format
        assert (pandas_out[scores] - spark_out[scores]).abs().max().max() < tolerance, serving_format


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_broken_onnx_artifact_fails_validate_in_one_line(tracking, checkpoint, tiny_checks, damage):
    checkpoint_uri, data = checkpoint
    version = output_of(register.main, "--checkpoint", checkpoint_uri, "--registered-model-name", "broken",
                        "--serving-format", "onnx")
    [graph] = Path.cwd().glob(f"mlruns/**/{ONNX_GRAPH}")  # the tracking fixture's artifact root
    graph.write_bytes(b"not a graph") if damage == "corrupt" else graph.unlink()
    result = CliRunner().invoke(validate.main, ["--model-uri", version, "--test-data", f"{data}/test.parquet",
                                                "--checks", str(tiny_checks), *map(str, GATE)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and lines[-1].startswith("Error: cannot load the ONNX model at "), result.output
    assert lines[-1].endswith("register the checkpoint again with serving_format=onnx or onnx-int8")
