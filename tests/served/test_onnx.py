"""The ONNX Runtime serving format: export and fusion, the logged pyfunc's answers against the
transformers pipeline's and MLflow's transformers pyfunc's, its inputs and params, a broken
model file, a served model without torch, and scoring over REST."""

import collections
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from steps.core import onnx_export
from steps.core.errors import PipelineError
from mlflow.exceptions import MlflowException

from steps.core.reading import Reading
from steps.core.task import Task
from steps.plumbing.serving import log_served_model
from tests.helpers import answers, assert_one_line, background, free_port

LABELS = ("ham", "spam", "question")
BATCH_SIZE = 4
# Beside the tiny data's own style: words it never saw, one word, and texts longer than the tiny
# BERT's 128 positions, which must be truncated.
UNSEEN_TEXTS = ["ok", "see you", "What?", "WIN WIN WIN", "12345", "lunch tomorrow at the pub?",
             "The quick brown fox jumps over the lazy dog. " * 20, "Call me now " * 60]


def label_of(label: str, text: str) -> str:
    return "spam" if label == "spam" else "question" if "?" in text else "ham"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model, sms_rows):
    """A 3-class classifier on the tiny BERT, trained for two epochs (seconds) and saved as train
    saves one. A random head would answer the same class for every text, each near 1/3: labels
    would then hinge on rounding, and agreeing on them would prove nothing."""
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_model, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)})
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    texts = [text for _, text in sms_rows]
    label_ids = torch.tensor([LABELS.index(label_of(label, text)) for label, text in sms_rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(2):
        for start in range(0, len(texts), 16):
            batch = tokenizer(texts[start:start + 16], padding=True, return_tensors="pt")
            model(**batch, labels=label_ids[start:start + 16]).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    folder = tmp_path_factory.mktemp("checkpoint")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def logged(tmp_path_factory, checkpoint):
    """The checkpoint logged by log_served_model as fp32 and as int8 into a store of this module's
    own, once: {"onnx": (model info, local copy of the model), "onnx-int8": ...}."""
    root = tmp_path_factory.mktemp("onnx-store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # the store's artifact root, ./mlruns, lands here
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        mlflow.set_experiment("onnx")  # not the experiment an earlier module of this worker left active
        try:
            with mlflow.start_run():
                infos = {name: log_served_model(str(checkpoint), name, Task(LABELS, reading=Reading()), BATCH_SIZE,
                                                name=name)
                         for name in ("onnx", "onnx-int8")}
            return {name: (info, Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(root / name))))
                    for name, info in infos.items()}
        finally:
            mlflow.set_tracking_uri(None)
            os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment exported it


@pytest.fixture(scope="module")
def texts(sms_rows):
    return [text for _, text in sms_rows[:22]] + UNSEEN_TEXTS


@pytest.fixture(scope="module")
def reference(checkpoint, texts):
    """The transformers pipeline's every class probability, fp32, in the labels' order."""
    classifier = pipeline("text-classification", model=str(checkpoint), tokenizer=str(checkpoint), device="cpu")
    answers = classifier(texts, top_k=None, truncation=True, max_length=128)
    return probability_matrix([[(pair["label"], pair["score"]) for pair in row] for row in answers])


def probability_matrix(rows) -> np.ndarray:
    """Rows of (label, score) pairs in any order, as probabilities in LABELS' order."""
    return np.array([[dict(row)[label] for label in LABELS] for row in rows])


def every_class(model, texts, **kwargs) -> np.ndarray:
    """The probabilities a pyfunc loaded with top_k None answers, in LABELS' order."""
    answer = model.predict(texts, **kwargs)
    return probability_matrix([[(cell["label"], cell["score"]) for cell in row] for row in answer.to_numpy()])


def test_export_fuses_attention_and_layer_norms(checkpoint, tmp_path):
    counts = onnx_export.build(str(checkpoint), tmp_path / "model.onnx", int8=True)

    assert counts["Attention"] == 2 and counts["SkipLayerNormalization"] == 4, counts  # 2 layers
    quantized = collections.Counter(node.op_type for node in onnx.load(tmp_path / "model.onnx").graph.node)
    assert quantized["QAttention"] == 2 and quantized["DynamicQuantizeLinear"] > 0, quantized


def test_the_default_models_architecture_distilbert_exports_fused_and_answers_as_torch(tiny_model, tmp_path):
    """main's default model is distilbert-base-uncased: no token_type_ids, its config names its sizes
    dim and n_heads. A tiny DistilBERT with random weights on the tiny model's tokenizer stands in."""
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=128,
        num_labels=len(LABELS), id2label=dict(enumerate(LABELS)))).eval()
    model.save_pretrained(tmp_path / "distilbert")
    tokenizer.save_pretrained(tmp_path / "distilbert")

    counts = onnx_export.build(str(tmp_path / "distilbert"), tmp_path / "model.onnx", int8=False)

    assert counts["Attention"] == 2 and counts["SkipLayerNormalization"] == 4, counts
    session = onnxruntime.InferenceSession(tmp_path / "model.onnx", providers=["CPUExecutionProvider"])
    assert [graph_input.name for graph_input in session.get_inputs()] == ["input_ids", "attention_mask"]
    batch = tokenizer(["ok", "WIN a prize now, call 0800 " * 5], padding=True, return_tensors="np")
    feeds = {name: batch[name] for name in ("input_ids", "attention_mask")}
    with torch.no_grad():
        expected = model(**{name: torch.from_numpy(array) for name, array in feeds.items()}).logits.numpy()
    np.testing.assert_allclose(session.run(["logits"], feeds)[0], expected, atol=1e-4)


def test_a_graph_without_attention_to_fuse_is_a_one_line_error(tmp_path):
    identity = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "identity",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(identity, tmp_path / "identity.onnx")

    with pytest.raises(PipelineError, match="fused no attention") as error:
        onnx_export.optimize(tmp_path / "identity.onnx", tmp_path / "fused.onnx", num_heads=2, hidden_size=32)
    assert_one_line(str(error.value))


def test_logged_model_describes_itself(logged):
    info, folder = logged["onnx-int8"]

    assert info.metadata["onnx_int8"] is True and info.metadata["onnx_fused_operators"]["Attention"] == 2
    assert Task.from_dict(info.metadata["classifier_task"]) == Task(LABELS)
    assert info.signature.params.to_dict() == [{"name": "batch_size", "type": "long", "default": BATCH_SIZE,
                                                 "shape": None}]
    requirements = (folder / "requirements.txt").read_text().split()
    assert {line.split("==")[0] for line in requirements} >= {"mlflow", "onnxruntime", "transformers"}
    assert not any(line.startswith("torch") for line in requirements)


def test_fp32_answers_as_the_transformers_pipeline(logged, texts, reference):
    model = mlflow.pyfunc.load_model(logged["onnx"][1])
    answer = model.predict(texts)

    assert list(answer.columns) == ["label", "score"] and len(answer) == len(texts)
    assert answer["label"].tolist() == [LABELS[i] for i in reference.argmax(axis=1)]
    assert len(set(answer["label"])) == len(LABELS)  # the comparison covers every class
    np.testing.assert_allclose(answer["score"], reference.max(axis=1), atol=1e-4)


def test_int8_answers_close_to_fp32(logged, texts, reference):
    """int8 weights move a trained model's probabilities by hundredths: it must answer the same class
    where fp32 is clear (a margin over 0.2), and every probability within 0.15."""
    probabilities = every_class(mlflow.pyfunc.load_model(logged["onnx-int8"][1], model_config={"top_k": None}), texts)

    top_two = np.sort(reference, axis=1)[:, -2:]
    clear = top_two[:, 1] - top_two[:, 0] > 0.2
    assert clear.mean() > 0.8
    assert (probabilities.argmax(axis=1) == reference.argmax(axis=1))[clear].all()
    assert np.abs(probabilities - reference).max() < 0.15  # a model 32 wide: int8 moves it more than a real one


def test_answers_in_input_order_whatever_the_lengths(logged, texts):
    """Scored in length order in batches of 2 and put back: each row is the text's answer alone."""
    model = mlflow.pyfunc.load_model(logged["onnx"][1], model_config={"top_k": None})
    shuffled = list(np.random.default_rng(0).permutation(texts))
    alone = np.vstack([every_class(model, [text]) for text in shuffled])

    np.testing.assert_allclose(every_class(model, shuffled, params={"batch_size": 2}), alone, atol=1e-5)


def test_every_class_answers_as_the_transformers_pyfunc(logged, checkpoint, texts, tmp_path):
    """Loaded with top_k None, both formats answer one column per rank of {label, score} pairs;
    without it, label and score. MLflow applies a load-time key only if the logged model_config
    has it, so the transformers model is logged with top_k "", the pipeline's "not given"."""
    classifier = pipeline("text-classification", model=str(checkpoint), tokenizer=str(checkpoint), device="cpu")
    mlflow.transformers.save_model(classifier, tmp_path / "transformers", task="text-classification",
                                   model_config={"batch_size": BATCH_SIZE, "top_k": "", "truncation": True,
                                                 "max_length": Reading().max_length},  # as register logs it
                                   input_example=(texts[:2], {"batch_size": BATCH_SIZE}),
                                   pip_requirements=["transformers"])
    answers = {name: mlflow.pyfunc.load_model(folder, model_config={"top_k": None}).predict(texts)
               for name, folder in (("transformers", tmp_path / "transformers"), ("onnx", logged["onnx"][1]))}

    assert list(answers["onnx"].columns) == list(answers["transformers"].columns) == [0, 1, 2]
    for onnx_row, transformers_row in zip(answers["onnx"].to_numpy(), answers["transformers"].to_numpy()):
        assert [cell["label"] for cell in onnx_row] == [cell["label"] for cell in transformers_row]
        np.testing.assert_allclose([cell["score"] for cell in onnx_row], [cell["score"] for cell in transformers_row],
                                   atol=1e-4)
    assert list(mlflow.pyfunc.load_model(logged["onnx"][1]).predict(texts).columns) == \
        list(mlflow.pyfunc.load_model(tmp_path / "transformers").predict(texts).columns) == ["label", "score"]


def test_takes_what_the_transformers_pyfunc_takes(logged, texts):
    model = mlflow.pyfunc.load_model(logged["onnx"][1])
    expected = model.predict(texts[:5])

    for given in (pd.DataFrame({"text": texts[:5]}), pd.Series(texts[:5]), np.array(texts[:5])):
        pd.testing.assert_frame_equal(model.predict(given), expected)
    pd.testing.assert_frame_equal(model.predict(texts[:5], params={"batch_size": 1}), expected, atol=1e-6)
    pd.testing.assert_frame_equal(model.predict(texts[0]), expected.head(1))


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_broken_model_file_is_a_one_line_error(logged, tmp_path, damage):
    folder = shutil.copytree(logged["onnx"][1], tmp_path / "model")
    graph = folder / "artifacts" / "model.onnx"
    if damage == "corrupt":
        graph.write_bytes(b"not an ONNX graph")
    else:
        graph.unlink()

    with pytest.raises(MlflowException, match="cannot load the ONNX model at .*serving_format=onnx") as error:
        mlflow.pyfunc.load_model(folder)
    assert_one_line(str(error.value))


def test_serves_without_torch(logged, tmp_path):
    """Its pip requirements hold no torch: it loads and answers where torch cannot be imported, from a
    folder outside the project, where the steps package cannot be imported: the model's one code file
    (steps/served/text_classifier.py) is all it needs."""
    script = ("import sys; sys.modules['torch'] = None; import mlflow; "
              f"print(mlflow.pyfunc.load_model({str(logged['onnx'][1])!r}).predict(['See you at lunch?']).to_json())")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.splitlines()[-1])["label"]["0"] in LABELS
    assert "type hints" not in result.stderr  # MLflow's warning on defining a PythonModel whose predict has none


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_mlflow_models_serve_answers_inputs_and_dataframes(logged, texts, tmp_path):
    folder = logged["onnx"][1]
    expected = mlflow.pyfunc.load_model(folder).predict(texts)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", folder, "--env-manager", "local",
             "--host", "127.0.0.1", "-p", port]
    with background(serve, tmp_path, "mlflow models serve", lambda: answers(f"{url}/ping")):
        replies = [post(f"{url}/invocations", {"inputs": texts, "params": {"batch_size": 3}}),
                   post(f"{url}/invocations", {"dataframe_split": {"columns": ["text"], "data": [[t] for t in texts]}})]

    for answer in replies:
        served = pd.DataFrame(answer["predictions"])
        assert served["label"].tolist() == expected["label"].tolist()
        np.testing.assert_allclose(served["score"], expected["score"], atol=1e-6)
