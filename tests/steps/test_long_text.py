"""Any text is answered, read as the model was trained: texts of every length and none (from
tests/helpers.py's ODD_TEXTS, a 20,000-character one among them) through validate, predict on
both engines and the REST server, in the transformers and the ONNX format, with long_text head
(the transformers format is MLflow's transformers model, truncating) and chunks (the project's
served model, in torch and in ONNX Runtime)."""

import json
import sys
import urllib.request

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner

from steps import predict, prepare, register, tokenize, train, validate
from tests.helpers import ODD_TEXTS, answers, background, free_port, output_of, runs_in

pytestmark = pytest.mark.slow

GATE = ["--min-accuracy", 0.4, "--min-f1", 0.0, "--min-margin-over-baseline", -1, "--min-check-pass-rate", 0]
FORMATS = ("transformers", "onnx")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


@pytest.mark.parametrize("long_text", ["head", "chunks"])
def test_any_text_is_answered_by_validate_predict_and_the_server_in_each_format(tracking, uci_file, tiny_model,
                                                                                tmp_path, long_text):
    assert len(ODD_TEXTS[-1]) == 20_000 and tracking  # longer than the tiny BERT's 128 positions, 155 times over
    data = output_of(prepare.main, "--dataset", uci_file)
    tokenized = output_of(tokenize.main, "--data", data, "--model", tiny_model, "--max-length", 24, "--long-text",
                          long_text, "--stride", 6)
    checkpoint = output_of(train.main, "--tokenized", tokenized, "--model", tiny_model, "--epochs", 2,
                           "--batch-size", 8, "--learning-rate", 3e-3)
    checks = tmp_path / "odd_checks.csv"
    pd.DataFrame({"text": ODD_TEXTS, "label": "ham", "capability": "odd input"}).to_csv(checks, index=False)
    inputs = tmp_path / "odd.csv"
    pd.DataFrame({"id": range(len(ODD_TEXTS)), "text": ODD_TEXTS}).to_csv(inputs, index=False)

    for serving_format in FORMATS:
        version = output_of(register.main, "--checkpoint", checkpoint, "--registered-model-name", "any-text",
                            "--serving-format", serving_format)
        info = mlflow.models.get_model_info(version)
        assert info.metadata["classifier_task"]["reading"] == {"max_length": 24, "long_text": long_text, "stride": 6}
        blended = info.metadata["classifier_task"].get("blend_weight", 0) > 0  # the pipeline cannot hold a blend
        assert ("transformers" in info.flavors) == (serving_format == "transformers" and long_text == "head"
                                                    and not blended)

        assert output_of(validate.main, "--model-uri", version, "--test-data", f"{data}/test.parquet",
                         "--checks", checks, *GATE) == version
        [run] = runs_in(tracking, "tests", f"params.model_uri = '{version}'")
        answered = pd.read_json(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                                    artifact_path="behaviour_checks.json"),
                                orient="split")
        assert answered["text"].tolist() == ODD_TEXTS and answered["predicted"].isin(["ham", "spam"]).all()
        assert run.data.metrics["format_disagreements"] == 0  # the fp32 checkpoint, read the same way

        scored = {}
        for engine in ("pandas", "spark"):
            output = tmp_path / f"{serving_format}-{engine}.csv"
            result = CliRunner().invoke(predict.main, ["--model-uri", version, "--input", str(inputs), "--output",
                                                       str(output), "--engine", engine, "--class-scores", "true"])
            assert result.exit_code == 0, result.output
            scored[engine] = pd.read_csv(output, keep_default_na=False)
        assert scored["pandas"]["id"].tolist() == list(range(len(ODD_TEXTS)))
        assert scored["pandas"]["predicted_label"].tolist() == scored["spark"]["predicted_label"].tolist()
        assert ((scored["pandas"]["score_ham"] + scored["pandas"]["score_spam"] - 1).abs() < 1e-5).all()

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", version, "--env-manager", "local",
                 "--host", "127.0.0.1", "-p", port]
        with background(serve, tmp_path, f"serve {serving_format}", lambda: answers(f"{url}/ping")):
            served = pd.DataFrame(post(f"{url}/invocations", {"inputs": ODD_TEXTS})["predictions"])
        assert served["label"].tolist() == scored["pandas"]["predicted_label"].tolist(), serving_format
