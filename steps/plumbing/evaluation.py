"""Scores on the test split through MLflow's classifier evaluator (`mlflow.models.evaluate`), and
the gate's rules checked through MLflow's MetricThresholds. (A multi-label task's scores are
scikit-learn's, logged alike: the evaluator has no multi-label mode.)

The evaluator scores predictions given as a column (no model call: the project's own batched
scoring made them), told the label list, the positive label of a binary task (MLflow otherwise
guesses one, mlflow#12790) and macro averaging for more classes. It logs its standard metrics
with a prefix (`test_f1_score`, ...) and its N x N confusion matrix
(`<prefix>confusion_matrix.png`) into the active run; for more classes, its per-class table
(`<prefix>per_class_metrics.json`: MLflow logs it unprefixed, so each evaluation would
overwrite the last). It draws ROC curves only from a raw
scikit-learn model's `predict_proba`, so ROC AUC (the positive class's, or one-vs-rest for
more classes) is an extra metric over a column of class probabilities. The project's shorter
names (`test_f1`, ...) and each class's precision, recall and F1 are logged beside MLflow's.
"""

import logging

import mlflow
import numpy as np
import pandas as pd
from mlflow.metrics import MetricValue
from mlflow.models import EvaluationResult, MetricThreshold, make_metric
from mlflow.models.evaluation.validation import ModelValidationFailedException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from steps.core import metrics
from steps.core.gate import Rule
from steps.core.task import Task, metric_key

# the project's metric name -> the evaluator's
PROJECT_NAMES = {"accuracy": "accuracy_score", "precision": "precision_score", "recall": "recall_score",
                 "f1": "f1_score", "roc_auc": "roc_auc"}

logging.getLogger("mlflow.models.evaluation.validation").setLevel(logging.WARNING)  # two INFO lines a rule


def roc_auc_metric(task: Task):
    def roc_auc(predictions, targets, probabilities) -> MetricValue:
        """MLflow passes arguments by parameter name (`probabilities` is a column of the data); with
        two parameters it would pass its own (eval_df, metrics) instead, so `predictions` stays, unused."""
        ids = targets.map(task.label2id).to_numpy()
        # None with a class missing, as in the evaluator's trial on the first row: not logged, no warning
        return MetricValue(aggregate_results={"roc_auc": metrics.roc_auc(task, ids, np.stack(probabilities))})
    return make_metric(eval_fn=roc_auc, greater_is_better=True, name="roc_auc")


def evaluate_tags(task: Task, labels, predicted, probabilities, prefix: str) -> dict[str, float]:
    """A multi-label task's evaluation (MLflow's classifier evaluator has none): scikit-learn's
    metrics logged with the prefix, and a table of each tag's test texts, threshold, precision,
    recall and F1 (`<prefix>per_tag_metrics.json`), the tags read at a glance."""
    scores = metrics.classification_metrics(task, labels, predicted, probabilities)
    mlflow.log_metrics({prefix + name: value for name, value in scores.items()})
    keys = [metric_key(tag) for tag in task.labels]
    mlflow.log_table(pd.DataFrame({"tag": task.labels, "test_texts": np.asarray(labels).sum(axis=0),
                                   "threshold": task.cutoffs,
                                   **{name: [scores[f"{name}_{key}"] for key in keys]
                                      for name in ("precision", "recall", "f1")}}).sort_values("f1", ascending=False),
                     f"{prefix}per_tag_metrics.json")
    return scores


def evaluate(task: Task, texts, labels, predicted, probabilities, prefix: str) -> dict[str, float]:
    """Evaluate answers `predicted` (label ids, or a multi-label task's rows of 0/1; with the
    probabilities) against a split's `labels` into the active run, metric names prefixed; the
    project's metrics by their short names."""
    labels = task.targets(labels)
    if task.multi_label:
        return evaluate_tags(task, labels, predicted, probabilities, prefix)
    frame = pd.DataFrame({"text": list(texts), "label": [task.labels[i] for i in labels],
                          "predicted": [task.labels[i] for i in predicted],
                          "probabilities": list(np.asarray(probabilities))})
    config = {"metric_prefix": prefix, "label_list": list(task.labels), "log_model_explainability": False}
    config.update({"pos_label": task.positive_label} if task.is_binary else {"average": task.average})
    result = mlflow.models.evaluate(data=frame, targets="label", predictions="predicted", model_type="classifier",
                                    extra_metrics=[roc_auc_metric(task)], evaluator_config=config)
    if "per_class_metrics" in result.artifacts:  # more than two classes: MLflow's table, logged without the prefix
        mlflow.log_table(result.artifacts["per_class_metrics"].content, f"{prefix}per_class_metrics.json")
        get_artifact_repository(mlflow.get_artifact_uri()).delete_artifacts("per_class_metrics.csv")
    scores = {short: float(result.metrics[prefix + name]) for short, name in PROJECT_NAMES.items()
              if prefix + name in result.metrics}
    per_class = metrics.classification_metrics(task, labels, predicted)
    scores.update({key: value for key, value in per_class.items() if key not in scores})
    mlflow.log_metrics({prefix + short: value for short, value in scores.items()
                        if short != PROJECT_NAMES.get(short)})
    return scores


def rejection_reason(rules: list[Rule], version_metrics: dict) -> str | None:
    """Why a version may not become champion (one line), or None when it may. Each rule is
    validated on its own: several rules read the F1, and MLflow's failure message names no rule.

    The baseline and the champion are plain thresholds: MetricThreshold's `min_absolute_change`
    must be positive, so neither "no worse than the champion" nor a negative margin is a change,
    and MLflow compares a baseline result's metric of the same name, which prefixes rule out."""
    result = EvaluationResult(metrics=version_metrics, artifacts={})
    reasons = []
    for rule in rules:
        try:
            mlflow.validate_evaluation_results(
                {rule.metric: MetricThreshold(threshold=float(rule.at_least), greater_is_better=True)}, result)
        except ModelValidationFailedException:
            reasons.append(rule.reason)
    return "; ".join(reasons) or None
