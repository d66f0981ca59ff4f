"""Scoring a registered text classifier: loading it, and its predictions as label ids and
p(spam), batched in length order so that each batch pads little."""

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from steps.shared import data
from steps.shared.errors import PipelineError


def load_model(uri: str):
    try:
        return mlflow.pyfunc.load_model(uri)
    except (MlflowException, OSError) as err:
        raise PipelineError(f"cannot load model '{uri}' ({str(err).splitlines()[0][:160]}): "
                            "pass a registered version, e.g. models:/spam-classifier/1") from None


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
