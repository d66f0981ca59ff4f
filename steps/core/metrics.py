"""Classification metrics on a task (scikit-learn), shared by training, validation and predict.

precision, recall and f1 are the task's: the positive class's for a binary task, the mean over
classes (macro) for more, and for a multi-label task the mean over tags (macro; each tag decided
on its own). Beside them: macro_f1 always, and precision_<label>, recall_<label>, f1_<label> for
each class or tag. A multi-label task's accuracy is subset accuracy (every tag of a text right,
as scikit-learn counts it); it adds micro_f1 and hamming_loss (the share of wrong tag decisions)."""

import numpy as np
from sklearn import metrics

from steps.core.task import Task, metric_key
from steps.served import text_classifier


def roc_auc(task: Task, labels, probabilities) -> float | None:
    """The positive class's ROC AUC, or one-vs-rest macro over the classes; None when a class is
    missing from `labels` (it cannot be ranked)."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    if task.multi_label:  # each tag ranked on its own: needs texts with and without it
        if not (labels.min(axis=0) < labels.max(axis=0)).all():
            return None
        return float(metrics.roc_auc_score(labels, probabilities, average="macro"))
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
    if task.multi_label:
        scores.update(micro_f1=metrics.f1_score(labels, predicted, average="micro", zero_division=0),
                      hamming_loss=metrics.hamming_loss(labels, predicted))
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
        probabilities = text_classifier.activate(eval_prediction.predictions, task.multi_label)
        labels = np.asarray(eval_prediction.label_ids).astype("int64")  # a multi-label task's come as floats
        if documents is not None:
            count = max(documents) + 1
            probabilities = text_classifier.pool(probabilities, documents, count)
            windows, labels = labels, np.zeros((count, *labels.shape[1:]), dtype=labels.dtype)
            labels[np.asarray(documents)] = windows  # a text's windows share its label
        return classification_metrics(task, labels, task.decide(probabilities), probabilities)
    return compute


def tuned_thresholds(labels, probabilities, grid=np.arange(0.05, 0.96, 0.05)) -> tuple[float, ...]:
    """A multi-label task's thresholds=tuned: each tag's threshold on the grid that gives its best F1
    on these (validation) texts; of equal ones, the nearest to 0.5, the untuned default."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities)
    best = []
    for tag in range(labels.shape[1]):
        f1s = [metrics.f1_score(labels[:, tag], probabilities[:, tag] >= cut, zero_division=0) for cut in grid]
        top = max(f1s)
        best.append(round(float(min((cut for cut, f1 in zip(grid, f1s) if f1 == top), key=lambda c: abs(c - 0.5))), 2))
    return tuple(best)
