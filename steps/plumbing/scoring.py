"""Scoring a registered text classifier: loading it with every class's score, its task, and its
predictions as label ids and class probabilities, batched in length order so that each batch
pads little.

A registered model answers `label` and `score` (of that label). Loaded with the model_config
override CLASS_SCORES, MLflow's transformers pyfunc (and this project's ONNX one) answers every
class instead: K columns 0..K-1, each a {"label", "score"} pair, best first. That is what
validate and predict read, so that ROC AUC and `score_<label>` have every class's probability.
"""

import ast
from dataclasses import asdict

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.utils.models import get_model_name_and_version

from steps.core.errors import PipelineError
from steps.core.task import Task
from steps.served import text_classifier

CLASS_SCORES = {"top_k": None}  # the text-classification pipeline's own switch for every class's score
TASK_METADATA = "classifier_task"  # the model's metadata key of its task (MLflow's own `task` names the pipeline)


def load_model(uri: str):
    """The pyfunc model at `uri`, answering every class's score (CLASS_SCORES)."""
    try:
        return mlflow.pyfunc.load_model(uri, model_config=CLASS_SCORES)
    except MlflowException as err:
        if err.error_code == "INVALID_STATE":  # the served model's own one line (a broken ONNX graph) says what to do
            raise PipelineError(err.message) from None
        raise PipelineError(f"cannot load model '{uri}' ({str(err).splitlines()[0][:200]}): "
                            "pass a registered version, e.g. models:/spam-classifier/1") from None
    except OSError as err:
        raise PipelineError(f"cannot load model '{uri}' ({str(err).splitlines()[0][:200]}): "
                            "pass a registered version, e.g. models:/spam-classifier/1") from None


def model_task(uri: str) -> Task:
    """The task register stored in the model's metadata (read from its MLmodel file alone)."""
    task = (mlflow.models.get_model_info(uri).metadata or {}).get(TASK_METADATA)
    if task is None:
        raise PipelineError(f"model '{uri}' records no task (labels): it was not registered by this project's "
                            "register step; register its checkpoint again")
    return Task.from_dict(task)


def registered_version(client, model_uri: str) -> tuple[str, str]:
    """(name, version) of a models:/ URI that names an existing registered version, else a one-line error."""
    if not model_uri.startswith("models:/"):
        raise PipelineError(f"model_uri '{model_uri}' is not a registered model: pass models:/<name>/<version>")
    try:
        name, version = get_model_name_and_version(client, model_uri)
        client.get_registered_model(name)
        client.get_model_version(name, version)
    except MlflowException as err:
        raise PipelineError(f"no registered model at '{model_uri}' ({str(err).splitlines()[0][:160]}): "
                            "pass the output of register, e.g. models:/spam-classifier/1") from None
    return name, version


def predict_in_length_order(predict_batch, inputs) -> pd.DataFrame:
    """`predict_batch` (texts, or a pair task's frame of two text columns, in; a frame of rows out)
    over the inputs sorted by length, rows back in the input order: each batch then holds
    messages of similar length and pads little."""
    if isinstance(inputs, pd.DataFrame):
        order = np.argsort(inputs.apply(lambda column: column.str.len()).sum(axis=1).to_numpy(), kind="stable")
        output = pd.DataFrame(predict_batch(inputs.iloc[order].reset_index(drop=True)))
    else:
        texts = list(inputs)
        order = np.argsort([len(text) for text in texts], kind="stable")
        output = pd.DataFrame(predict_batch([texts[i] for i in order]))
    return output.iloc[np.argsort(order)].reset_index(drop=True)


def class_probabilities(rows, task: Task) -> np.ndarray:
    """Rows of {"label", "score"} pairs (any order) as a matrix of probabilities in the task's order."""
    probabilities = np.zeros((len(rows), len(task.labels)))
    for i, pairs in enumerate(rows):
        for pair in pairs:
            if pair["label"] not in task.label2id:
                raise PipelineError(f"the model answers label '{pair['label']}', not one of the task's "
                                    f"({', '.join(task.labels)}): register a checkpoint trained on this task")
            probabilities[i, task.label2id[pair["label"]]] = pair["score"]
    return probabilities


def from_spark(rows, task: Task) -> np.ndarray:
    """class_probabilities of what spark_udf answers with result_type array<string>: MLflow turns
    each {"label", "score"} cell into its Python literal (its struct conversion looks the answer's
    columns up by name, and they are numbered)."""
    return class_probabilities([[ast.literal_eval(cell) for cell in row] for row in rows], task)


def predict(predict_batch, inputs, task: Task) -> tuple[np.ndarray, np.ndarray]:
    """The answers (label ids, or a multi-label task's rows of 0/1 a tag at its thresholds) and
    class probabilities from a model loaded with load_model, of texts or (a pair task) a frame of
    its two columns, as task.model_input gives them."""
    output = predict_in_length_order(predict_batch, inputs)
    probabilities = class_probabilities(output.to_numpy().tolist(), task)
    return task.decide(probabilities), probabilities


def checkpoint_predict(checkpoint_dir: str, task: Task):
    """A batch function (as predict takes) of the fp32 checkpoint itself, in torch on the CPU or a
    GPU, reading texts as the model was trained and blending as it is served: the reference a
    served format is compared with."""
    scorer = text_classifier.checkpoint_scorer(checkpoint_dir, asdict(task.read_as), weight=task.blend_weight)

    def predict_batch(inputs):
        texts, pairs = text_classifier.texts_of(inputs, task.pair_columns)
        return text_classifier.answer(scorer.probabilities(texts, 64, pairs), scorer.labels, None)
    return predict_batch
