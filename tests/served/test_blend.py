"""The blended served model in every runtime (torch, ONNX, ONNX int8): it answers the weighted
mean of the lexical model's and the encoder's probabilities, ships the lexical model and its
requirements, answers every odd text (a 20,000-character one too), and the ONNX one serves without
torch; a weight of 1 never runs the encoder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import mlflow
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from steps.core import blend
from steps.core.reading import Reading
from steps.core.task import Task
from steps.plumbing.serving import log_served_model
from steps.served import text_classifier
from tests.helpers import ODD_TEXTS

SPAM = Task(("ham", "spam"), "spam", reading=Reading(), blend_weight=0.7)
RUNTIMES = ("torch", "onnx", "onnx-int8")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model, sms_rows):
    """train's folder as a blend leaves it: the tiny BERT with a new two-class head, and the lexical model."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model, num_labels=2, id2label=SPAM.id2label, label2id=SPAM.label2id)
    folder = tmp_path_factory.mktemp("blended-checkpoint")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(folder)
    joblib.dump(blend.fit_lexical([text for _, text in sms_rows], [SPAM.label2id[label] for label, _ in sms_rows]),
                folder / text_classifier.LEXICAL)
    return folder


@pytest.fixture(scope="module")
def logged(tmp_path_factory, checkpoint):
    """The blended checkpoint logged in each runtime: {runtime: local copy of the model}."""
    root = tmp_path_factory.mktemp("blend-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        mlflow.set_experiment("blend")
        try:
            with mlflow.start_run():
                infos = {runtime: log_served_model(str(checkpoint), runtime, SPAM, 4, name=runtime.replace("-", "_"))
                         for runtime in RUNTIMES}
            return {runtime: Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / runtime)))
                    for runtime, info in infos.items()}
        finally:
            mlflow.set_tracking_uri(None)
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@pytest.fixture(scope="module")
def texts(sms_rows):
    return [text for _, text in sms_rows[:20]] + ODD_TEXTS


def spam_probability(folder, texts) -> np.ndarray:
    answer = mlflow.pyfunc.load_model(folder, model_config={"top_k": None}).predict(texts)
    return np.array([next(cell["score"] for cell in row if cell["label"] == "spam") for row in answer.to_numpy()])


def test_every_runtime_answers_the_weighted_mean_of_both_readers(logged, checkpoint, texts):
    reading = {"max_length": 128, "long_text": "head", "stride": 32}
    encoder = text_classifier.checkpoint_scorer(str(checkpoint), reading).probabilities(texts, 8)[:, 1]
    lexical = joblib.load(checkpoint / text_classifier.LEXICAL).predict_proba(texts)[:, 1]
    expected = 0.7 * lexical + 0.3 * encoder
    assert np.abs(expected - encoder).max() > 0.05  # the blend moves the answers: comparing them proves something

    for runtime in RUNTIMES:  # int8 weights move the encoder's probabilities by hundredths, a blend's by 0.3 of that
        np.testing.assert_allclose(spam_probability(logged[runtime], texts), expected,
                                   atol=0.05 if runtime == "onnx-int8" else 1e-4, err_msg=runtime)


def test_every_runtime_ships_the_lexical_model_and_its_requirements(logged):
    for runtime, folder in logged.items():
        requirements = {line.split("==")[0] for line in (folder / "requirements.txt").read_text().split()}
        assert {"scikit-learn", "joblib"} <= requirements, runtime
        assert ("torch" in requirements) == (runtime == "torch")
        config = mlflow.models.Model.load(folder / "MLmodel").flavors["python_function"]["config"]
        assert config["blend_weight"] == 0.7
        shipped = list(folder.rglob(text_classifier.LEXICAL))
        assert len(shipped) == 1, (runtime, shipped)


def test_every_odd_text_is_answered_by_every_runtime(logged):
    assert len(ODD_TEXTS[-1]) >= 20_000
    for runtime, folder in logged.items():
        answer = mlflow.pyfunc.load_model(folder).predict(ODD_TEXTS)
        assert len(answer) == len(ODD_TEXTS) and set(answer["label"]) <= {"ham", "spam"}, runtime
        assert answer["score"].between(0.5, 1).all()


# torch made unfindable, as where it is not installed (sys.modules['torch'] = None would break scipy,
# which the lexical model imports: it looks torch's Tensor up in any torch module it finds loaded)
WITHOUT_TORCH = """
import sys

class Hidden:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        return None if name.split(".")[0] == "torch" else self.finder.find_spec(name, path, target)

    def __getattr__(self, name):  # find_distributions, for importlib.metadata
        return getattr(self.finder, name)

sys.meta_path[:] = [Hidden(finder) for finder in sys.meta_path]
import mlflow
print(mlflow.pyfunc.load_model(sys.argv[1]).predict(["WIN a free prize now"]).to_json())
"""


def test_the_blended_onnx_model_serves_without_torch(logged, tmp_path):
    script = tmp_path / "without_torch.py"
    script.write_text(WITHOUT_TORCH)
    result = subprocess.run([sys.executable, str(script), str(logged["onnx"])], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["label"]["0"] in SPAM.labels


def test_a_weight_of_one_answers_the_lexical_model_alone_without_running_the_encoder(checkpoint, sms_rows):
    def no_encoder(batch):
        raise AssertionError("the encoder ran")

    lexical = joblib.load(checkpoint / text_classifier.LEXICAL)
    texts = [text for _, text in sms_rows[:10]]
    scorer = text_classifier.Scorer(no_encoder, ["input_ids"], str(checkpoint), {"max_length": 128, "long_text": "head",
                                                                                  "stride": 32}, lexical, 1.0)
    np.testing.assert_allclose(scorer.probabilities(texts, 4), lexical.predict_proba(texts))
