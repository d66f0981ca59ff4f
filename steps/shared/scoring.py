"""Scoring a registered text classifier: loading it, and its predictions as label ids and
p(spam), batched in length order so that each batch pads little."""

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.utils.models import get_model_name_and_version

from steps.shared import data
from steps.shared.errors import PipelineError


def load_model(uri: str):
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as err:
        raise PipelineError(f"cannot load model '{uri}' ({str(err).splitlines()[0][:160]}): "
                            "pass a registered version, e.g. models:/spam-classifier/1") from None


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


def predict_in_length_order(predict_batch, texts) -> pd.DataFrame:
    """`predict_batch` (texts in, a frame of rows out) over the texts sorted by length, rows back
    in the input order: each batch then holds messages of similar length and pads little."""
    texts = list(texts)
    order = np.argsort([len(text) for text in texts], kind="stable")
    output = pd.DataFrame(predict_batch([texts[i] for i in order]))
    return output.iloc[np.argsort(order)].reset_index(drop=True)


def label_ids_and_spam_probability(output: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A classifier's rows of `label` (ham/spam) and `score` (of that label) as ids and p(spam)."""
    unknown = set(output["label"]) - set(data.LABELS)
    if unknown:
        raise PipelineError(f"the model predicts labels {sorted(unknown)}, not {sorted(data.LABELS)}: "
                            "register a checkpoint trained by this project's train step")
    is_spam = (output["label"] == data.POSITIVE_LABEL).to_numpy()
    return is_spam.astype(int), np.where(is_spam, output["score"], 1 - output["score"]).astype(float)


def predict(predict_batch, texts) -> tuple[np.ndarray, np.ndarray]:
    """Predicted label ids and spam probabilities from a text classifier's batch function
    (a pyfunc model's `predict`, or a pipeline's call): rows of `label` and `score`."""
    return label_ids_and_spam_probability(predict_in_length_order(predict_batch, texts))
