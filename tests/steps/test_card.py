"""Every registered version's model card (steps/core/card.py): each step adds its part, the
checkpoint folder is a Hub model folder, validate's figures are the run's own, and a card that
cannot be written fails validate with no alias moved and no half-written description."""

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from huggingface_hub import ModelCard
from mlflow.tracking import MlflowClient

from steps import register, train, validate
from steps.core import card
from steps.plumbing import contract
from tests.helpers import assert_one_line_error, output_of, runs_in

pytestmark = pytest.mark.slow

GATE = ["--min-accuracy", 0.4, "--min-f1", 0.0, "--min-margin-over-baseline", -1, "--min-check-pass-rate", 0]


@pytest.fixture
def registered(tracking, tokenized, tiny_model):
    """train's checkpoint of the fixture messages registered as version 1; prepare's data folder."""
    [prepared] = runs_in(tracking, "tests", "tags.output_uri LIKE '%/data'")
    checkpoint = output_of(train.main, "--tokenized", tokenized, "--model", tiny_model, "--epochs", 2,
                           "--batch-size", 8, "--learning-rate", 3e-3)
    version = output_of(register.main, "--checkpoint", checkpoint, "--registered-model-name", "carded",
                        "--serving-format", "onnx")
    return checkpoint, version, prepared.data.tags["output_uri"]


def test_each_step_adds_its_part_and_the_figures_are_the_runs_own(tracking, registered, tiny_model, tiny_checks):
    checkpoint, version, data = registered
    folder = mlflow.artifacts.download_artifacts(checkpoint)
    trained = ModelCard.load(f"{folder}/{card.FILE}")  # the Hub's own reader of a model folder's card
    assert trained.data.pipeline_tag == "text-classification" and trained.data.datasets == ["SMSSpamCollection"]
    sections = card.split_sections(trained.text)
    assert list(sections)[1:] == ["What it is", "Training data", "Training", "Limits"]
    assert f"fine-tuned from `{tiny_model}` on single texts" in sections["What it is"]
    assert "`ham`, `spam`" in sections["What it is"] and "| **all** |" in sections["Training data"]
    [train_run] = runs_in(tracking, "tests", "params.tokenized LIKE '%'")
    assert f"validation F1 {train_run.data.metrics['best_validation_f1']:.4f}" in sections["Training"]
    assert "| `learning_rate` | `0.003` |" in sections["Training"]
    assert sections["Limits"] == (
        "- Its training texts' letters by script: Latin 100.0% (the language itself is not detected); texts in other "
        "scripts or languages are outside what it learned.\n"
        "- No text of the data was longer than 32 tokens; a longer one is cut to its start.")

    output_of(validate.main, "--model-uri", version, "--test-data", f"{data}/test.parquet", "--checks", tiny_checks,
              *GATE)
    name, number = "carded", version.rsplit("/", 1)[1]
    model_version = tracking.get_model_version(name, number)
    validated = ModelCard.load(mlflow.artifacts.download_artifacts(run_id=model_version.run_id,
                                                                   artifact_path=contract.CARD_FILE))
    [validate_run] = runs_in(tracking, "tests", f"params.model_uri = '{version}'")
    metrics = validate_run.data.metrics
    results = {result.metric_type: result.metric_value for result in validated.data.eval_results}
    assert results == {key: round(metrics[f"test_{key}"], 4) for key in ("accuracy", "f1", "macro_f1", "roc_auc")}
    evaluation = card.split_sections(validated.text)["Evaluation"]
    assert f"| f1 | {metrics['test_f1']:.4f} | {metrics['baseline_f1']:.4f} |" in evaluation
    test = mlflow.artifacts.download_artifacts(f"{data}/test.parquet")
    spam_rows = int((pd.read_parquet(test)["label"] == 1).sum())
    assert (f"| F1 `spam` ({spam_rows} test rows) | {metrics['test_f1_spam']:.4f} | {metrics['baseline_f1_spam']:.4f} |"
            in evaluation)
    assert "**Verdict:** passed the gate." in evaluation and "Behaviour checks passed, by capability" in evaluation
    assert "Served as `onnx`" in card.split_sections(validated.text)["Serving"]
    assert model_version.description.startswith(f"carded version {number}: A text classifier fine-tuned from")
    assert f"Test spam F1 {metrics['test_f1']:.4f}" in model_version.description


def test_a_card_that_cannot_be_written_fails_validate_and_moves_nothing(tracking, registered, tiny_checks,
                                                                        monkeypatch):
    _, version, data = registered
    number = version.rsplit("/", 1)[1]

    log_artifact = MlflowClient.log_artifact

    def read_only(self, run_id, local_path, artifact_path=None):  # the store refuses the card alone
        if artifact_path == contract.CARD_FILE.split("/")[0]:
            raise OSError(30, "Read-only file system")
        return log_artifact(self, run_id, local_path, artifact_path)
    monkeypatch.setattr(MlflowClient, "log_artifact", read_only)
    result = CliRunner().invoke(validate.main, ["--model-uri", version, "--test-data", f"{data}/test.parquet",
                                                "--checks", str(tiny_checks), *map(str, GATE)])
    assert_one_line_error(result, "cannot write the model card of carded version 1", "Read-only file system",
                          "make the artifact store writable")
    model_version = tracking.get_model_version("carded", number)
    run = tracking.get_run(model_version.run_id)
    assert model_version.description.endswith(
        f"Not validated yet. [The model card](#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}/artifacts/"
        "card/README.md) (README.md in the Hub's format) is an artifact of this version's run.")
    assert contract.STATUS_TAG not in model_version.tags
    assert contract.CHAMPION_ALIAS not in tracking.get_registered_model("carded").aliases
