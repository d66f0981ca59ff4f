"""Classification metrics with scikit-learn (spam is the positive class), shared by train and validate."""

import numpy as np
from sklearn import metrics

from steps.shared.data import LABELS, POSITIVE_LABEL

SPAM = LABELS[POSITIVE_LABEL]


def classification_metrics(labels, predicted, spam_probability=None) -> dict[str, float]:
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    scores = {
        "accuracy": metrics.accuracy_score(labels, predicted),
        "precision": metrics.precision_score(labels, predicted, pos_label=SPAM, zero_division=0),
        "recall": metrics.recall_score(labels, predicted, pos_label=SPAM, zero_division=0),
        "f1": metrics.f1_score(labels, predicted, pos_label=SPAM, zero_division=0),
    }
    if spam_probability is not None and len(set(labels.tolist())) == 2:
        scores["roc_auc"] = metrics.roc_auc_score(labels, spam_probability)
    return {name: float(value) for name, value in scores.items()}


def softmax(logits) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def trainer_metrics(eval_prediction) -> dict[str, float]:
    """`compute_metrics` for the HF Trainer: logits and label ids in, metrics out."""
    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    return classification_metrics(labels, logits.argmax(axis=-1), softmax(logits)[:, SPAM])
