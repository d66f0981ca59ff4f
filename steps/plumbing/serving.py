"""Logging the project's own served model (steps/served/model.py, from code) into the active run:
the ONNX formats, and the torch one that reads a text as the transformers pipeline cannot
(long_text head_tail or chunks, text pairs), answers what its pyfunc cannot (a multi-label
task's lists of tags) or blends the encoder with the lexical model. The model ships steps/served/text_classifier.py as its code,
nothing else of the project; its pip requirements are explicit (the ONNX ones without torch)."""

import tempfile
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import mlflow
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
from mlflow.types.schema import Array
import pandas as pd
from transformers import AutoConfig, AutoTokenizer

from steps.core.task import Task
from steps.served import text_classifier
from steps.plumbing.scoring import TASK_METADATA

SERVED = Path(text_classifier.__file__).parent
INPUT_EXAMPLE = ("Are we still meeting for lunch tomorrow?", "WINNER! Claim your free prize now, text WIN to 80086")
PIP_REQUIREMENTS = {
    "onnx": ("mlflow", "onnxruntime", "transformers", "tokenizers", "numpy", "pandas", "psutil"),
    "torch": ("mlflow", "torch", "transformers", "tokenizers", "numpy", "pandas"),
}
BLEND_REQUIREMENTS = ("scikit-learn", "joblib")  # the blend's lexical model, pickled by joblib: the same versions


def signature(batch_size: int, task: Task) -> ModelSignature:
    """The transformers text-classification pyfunc's signature (for a pair, its two named text
    columns), batch_size its param; a multi-label model's answers `tags` (and score_<tag> with its
    param tag_scores)."""
    pair_columns = task.pair_columns
    inputs = [ColSpec(DataType.string, name) for name in pair_columns] if pair_columns else [ColSpec(DataType.string)]
    params = [ParamSpec("batch_size", DataType.long, batch_size)]
    if task.multi_label:
        outputs = [ColSpec(Array(DataType.string), "tags")]
        params.append(ParamSpec("tag_scores", DataType.boolean, False))
    else:
        outputs = [ColSpec(DataType.string, "label"), ColSpec(DataType.double, "score")]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs), params=ParamSchema(params))


def save_tokenizer(checkpoint_dir: str, folder: Path) -> Path:
    """The tokenizer's files with config.json beside them: its labels."""
    AutoTokenizer.from_pretrained(checkpoint_dir).save_pretrained(folder)
    AutoConfig.from_pretrained(checkpoint_dir).save_pretrained(folder)
    return folder


def input_example(task: Task):
    """The task's example texts (a pair task's as a frame of its two columns), INPUT_EXAMPLE without any."""
    if task.pair_columns:
        return pd.DataFrame(list(task.examples), columns=list(task.pair_columns))
    return list(task.examples or INPUT_EXAMPLE)


def log_served_model(checkpoint_dir: str, runtime: str, task: Task, batch_size: int, *, dtype: str = "fp32",
                     name: str = "model") -> ModelInfo:
    """The checkpoint as the served model in the active run, reading texts as `task` says
    (recorded in its metadata). runtime: torch (the checkpoint in `dtype`), onnx or onnx-int8
    (exported and fused; int8 weights). top_k is logged as "" so that
    `load_model(uri, model_config={"top_k": None})` can set it: MLflow applies only the load-time
    keys that the logged model_config has."""
    model_config = {"batch_size": batch_size, "top_k": "", **asdict(task.read_as), "dtype": dtype,
                    "intra_op_num_threads": 0, "pair_columns": list(task.pair_columns or ()),
                    "thresholds": task.cutoffs.tolist() if task.multi_label else [],
                    "blend_weight": task.blend_weight}
    metadata = {TASK_METADATA: task.to_dict()}
    with tempfile.TemporaryDirectory() as folder:
        if runtime == "torch":
            artifacts = {text_classifier.CHECKPOINT: checkpoint_dir}
        else:
            from steps.core import onnx_export  # imports torch, needed to export only

            graph = Path(folder, text_classifier.ONNX_GRAPH)
            metadata.update(onnx_fused_operators=onnx_export.build(checkpoint_dir, graph, runtime == "onnx-int8"),
                            onnx_int8=runtime == "onnx-int8")
            artifacts = {text_classifier.ONNX_GRAPH: str(graph),
                         text_classifier.TOKENIZER: str(save_tokenizer(checkpoint_dir, Path(folder, "tokenizer")))}
            if task.blend_weight:  # the torch format finds it in its checkpoint folder
                artifacts[text_classifier.LEXICAL] = str(Path(checkpoint_dir, text_classifier.LEXICAL))
        requirements = PIP_REQUIREMENTS["torch" if runtime == "torch" else "onnx"] + (
            BLEND_REQUIREMENTS if task.blend_weight else ())
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(SERVED / "model.py"), code_paths=[text_classifier.__file__],
            artifacts=artifacts, signature=signature(batch_size, task),
            input_example=(input_example(task), {"batch_size": batch_size}),
            model_config=model_config, pip_requirements=[f"{package}=={version(package).split('+')[0]}"
                                                         for package in requirements],
            metadata=metadata)
