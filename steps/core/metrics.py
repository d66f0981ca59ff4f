"""Classification metrics on a task (scikit-learn), shared by training, validation and predict.

precision, recall and f1 are the task's: the positive class's for a binary task, the mean over
classes (macro) for more. Beside them: macro_f1 always, and precision_<label>, recall_<label>,
f1_<label> for each class."""

import numpy as np
from sklearn import metrics

from steps.core.task import Task, metric_key
from steps.served import text_classifier


def roc_auc(task: Task, labels, probabilities) -> float | None:
    """The positive class's ROC AUC, or one-vs-rest macro over the classes; None when a class is
    missing from `labels` (it cannot be ranked)."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    if len(set(labels.tolist())) < len(task.labels):
        return None
    if task.is_binary:
        return float(metrics.roc_auc_score(labels == task.positive_id, probabilities[:, task.positive_id]))
    return float(metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro",
                                       labels=list(range(len(task.labels)))))


def classification_metrics(task: Task, labels, predicted, probabilities=None) -> dict[str, float]:
    """Label ids in, metrics out; `probabilities` (rows of class probabilities in the task's
    order) adds roc_auc."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    ids = list(range(len(task.labels)))
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(labels, predicted, labels=ids,
                                                                       zero_division=0)
    summary = (metrics.precision_recall_fscore_support(labels, predicted, pos_label=task.positive_id,
                                                       average="binary", zero_division=0)
               if task.is_binary else (precision.mean(), recall.mean(), f1.mean(), None))
    scores = {"accuracy": metrics.accuracy_score(labels, predicted), "precision": summary[0],
              "recall": summary[1], "f1": summary[2], "macro_f1": f1.mean()}
    for i, label in enumerate(task.labels):
        key = metric_key(label)
        scores.update({f"precision_{key}": precision[i], f"recall_{key}": recall[i], f"f1_{key}": f1[i]})
    if probabilities is not None and (auc := roc_auc(task, labels, probabilities)) is not None:
        scores["roc_auc"] = auc
    return {name: float(value) for name, value in scores.items()}


def trainer_metrics(task: Task, documents=None):
    """`compute_metrics` for the HF Trainer: logits and label ids in, the task's metrics out. With
    `documents` (each evaluated window's text, long_text=chunks), scored per text, as served: the
    mean of its windows' probabilities."""
    def compute(eval_prediction) -> dict[str, float]:
        probabilities, labels = text_classifier.softmax(eval_prediction.predictions), np.asarray(eval_prediction.label_ids)
        if documents is not None:
            count = max(documents) + 1
            probabilities = text_classifier.pool(probabilities, documents, count)
            labels = np.zeros(count, dtype=labels.dtype)
            labels[np.asarray(documents)] = eval_prediction.label_ids  # a text's windows share its label
        return classification_metrics(task, labels, probabilities.argmax(axis=-1), probabilities)
    return compute
