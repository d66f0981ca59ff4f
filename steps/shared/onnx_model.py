"""A fine-tuned text classifier served by ONNX Runtime as an MLflow pyfunc model that answers as
MLflow's transformers text-classification pyfunc does, without torch.

Input:  a checkpoint folder (config.json with id2label, weights, tokenizer files) of a BERT-like
        classifier, exported and fused by steps.core.onnx_export (int8 weights if quantized).
Logs:   into the active run (`log_onnx_model`), a pyfunc model with artifacts `model.onnx` and
        `tokenizer` (the tokenizer's files and config.json); the project's `steps` package as its
        code; a signature (a string column in; label and score out; param batch_size); an input
        example; model_config (batch_size, top_k, intra_op_num_threads); explicit pip requirements
        (no torch); metadata with the fused-operator counts and whether the weights are int8.
Serves: texts (a list, one string, a Series, or the one-column DataFrame MLflow makes of
        `{"inputs": [...]}`, `{"dataframe_split": ...}` ...) -> a DataFrame of `label` and `score`
        (the softmax probability of that label), one row per text, in input order; with `top_k`
        set, one column per rank instead, each a {"label", "score"} dict, best first.
"""

import os
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import onnxruntime as ort
import pandas as pd
import psutil
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf, NoSuchFile
from transformers import AutoConfig, AutoTokenizer

from steps.core.errors import PipelineError

MODEL_FILE, TOKENIZER = "model.onnx", "tokenizer"
MAX_LENGTH = 512  # tokens, where neither the tokenizer nor the model says less
INPUT_EXAMPLE = ("Are we still meeting for lunch tomorrow?", "WINNER! Claim your free prize now, text WIN to 80086")
# Explicit, and without torch: ONNX Runtime runs the graph and transformers only tokenizes.
PIP_REQUIREMENTS = [f"{name}=={version(name).split('+')[0]}"
                    for name in ("mlflow", "onnxruntime", "transformers", "tokenizers", "numpy", "pandas", "psutil")]
# The model is pickled as a reference to this module, so the package travels with it: the model
# then loads wherever MLflow serves it, not only in this project's folder.
STEPS_PACKAGE = str(Path(__file__).resolve().parents[1])


def texts_of(model_input) -> list[str]:
    """The texts of a request. Through MLflow's pyfunc they come as a one-column DataFrame, whatever
    the caller sent; called directly, the model also takes a list, a Series or one string."""
    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] != 1:
            raise MlflowException.invalid_parameter_value(
                f"expected one column of texts, got columns {list(model_input.columns)}")
        model_input = model_input.iloc[:, 0]
    return [model_input] if isinstance(model_input, str) else list(model_input)


def softmax(logits: np.ndarray) -> np.ndarray:  # not steps.core.metrics': that imports scikit-learn, not served
    exp = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def answer(probabilities: np.ndarray, labels: list[str], top_k) -> pd.DataFrame:
    """Rows as the transformers pipeline gives them: with top_k "" (its "not given") the best label
    and its score; else one column per rank, top_k of them (None: all), ties in label order."""
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    if top_k == "":
        best = ranked[:, 0]
        return pd.DataFrame({"label": [labels[i] for i in best],
                             "score": probabilities[np.arange(len(best)), best]})
    return pd.DataFrame([[{"label": labels[i], "score": float(row[i])} for i in ranks[:top_k]]
                         for row, ranks in zip(probabilities, ranked)])


def intra_op_threads(configured: int) -> int:
    """ONNX Runtime's threads per request: as configured, else one per physical core (hyper-threads
    share a core's vector units, so more threads than cores only contend)."""
    return configured or psutil.cpu_count(logical=False) or os.cpu_count() or 1


def inference_session(path: str, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except (NoSuchFile, InvalidProtobuf, InvalidGraph, Fail) as err:
        raise PipelineError(f"cannot load the ONNX model at {path} ({str(err).splitlines()[0][:160]}): "
                            "register the checkpoint again with serving_format=onnx or onnx-int8") from None


class OnnxTextClassifier(mlflow.pyfunc.PythonModel):
    """The classifier's ONNX graph behind MLflow's pyfunc interface; model_config holds batch_size,
    top_k (as the transformers pipeline's) and intra_op_num_threads (0: one per physical core)."""

    def load_context(self, context):
        self.config = dict(context.model_config)
        self.session = inference_session(context.artifacts[MODEL_FILE],
                                         intra_op_threads(self.config["intra_op_num_threads"]))
        self.tokenizer = AutoTokenizer.from_pretrained(context.artifacts[TOKENIZER])
        model_config = AutoConfig.from_pretrained(context.artifacts[TOKENIZER])
        self.labels = [model_config.id2label[i] for i in range(model_config.num_labels)]
        # The pipeline does not truncate at all; a text longer than the model's positions would fail.
        self.max_length = min(self.tokenizer.model_max_length, model_config.max_position_embeddings, MAX_LENGTH)
        self.input_names = [graph_input.name for graph_input in self.session.get_inputs()]

    # MLflow's pyfunc hands predict a DataFrame (the signature's one string column). Saying so also
    # tells MLflow to take the logged signature rather than infer one from the hint, and keeps it
    # from warning, on every import, that predict has no type hints.
    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        batch_size = (params or {}).get("batch_size") or self.config["batch_size"]
        probabilities = softmax(self.logits(texts_of(model_input), batch_size))
        return answer(probabilities, self.labels, self.config["top_k"])

    def logits(self, texts: list[str], batch_size: int) -> np.ndarray:
        """Each text's logits, in input order, scored shortest first in batches padded only to their
        longest text: a batch of similar lengths wastes little work on padding."""
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        order = np.argsort([len(ids) for ids in encoded["input_ids"]], kind="stable")
        logits = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            batch = self.tokenizer.pad({name: [encoded[name][i] for i in rows] for name in self.input_names},
                                       return_tensors="np")
            logits[rows] = self.session.run(["logits"], {name: batch[name] for name in self.input_names})[0]
        return logits


def signature(batch_size: int) -> ModelSignature:
    """The transformers text-classification pyfunc's signature, batch_size its only param."""
    return ModelSignature(inputs=Schema([ColSpec(DataType.string)]),
                          outputs=Schema([ColSpec(DataType.string, "label"), ColSpec(DataType.double, "score")]),
                          params=ParamSchema([ParamSpec("batch_size", DataType.long, batch_size)]))


def save_tokenizer(checkpoint_dir: str, folder: Path) -> Path:
    """The tokenizer's files with config.json beside them: its labels and position limit."""
    AutoTokenizer.from_pretrained(checkpoint_dir).save_pretrained(folder)
    AutoConfig.from_pretrained(checkpoint_dir).save_pretrained(folder)
    return folder


def log_onnx_model(checkpoint_dir: str, quantize: bool, batch_size: int, metadata: dict | None = None,
                   name: str = "model", examples: Sequence[str] = INPUT_EXAMPLE) -> ModelInfo:
    """The checkpoint as an ONNX Runtime pyfunc model in the active run (see the module's docstring),
    `examples` its input example. top_k is logged as "" so that `load_model(uri, model_config={"top_k":
    None})` can set it: MLflow applies only the load-time keys that the logged model_config has."""
    from steps.core import onnx_export  # imports torch, needed to export only: the served model imports this module

    with tempfile.TemporaryDirectory() as folder:
        graph = Path(folder, MODEL_FILE)
        fused = onnx_export.build(checkpoint_dir, graph, quantize)
        model_config = {"batch_size": batch_size, "top_k": "", "intra_op_num_threads": 0}
        return mlflow.pyfunc.log_model(
            name=name, python_model=OnnxTextClassifier(), code_paths=[STEPS_PACKAGE],
            artifacts={MODEL_FILE: str(graph), TOKENIZER: str(save_tokenizer(checkpoint_dir, Path(folder, TOKENIZER)))},
            signature=signature(batch_size), input_example=(list(examples), {"batch_size": batch_size}),
            model_config=model_config, pip_requirements=PIP_REQUIREMENTS,
            metadata={**(metadata or {}), "onnx_fused_operators": fused, "onnx_int8": quantize})
