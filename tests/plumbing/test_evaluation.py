"""validate's evaluation through MLflow's classifier evaluator, into the active run."""


import mlflow
import numpy as np
import pytest

from steps.core.task import Task
from steps.plumbing import evaluation

SMS = Task(("ham", "spam"), "spam")


def spam_scores(p_spam):
    return np.stack([1 - np.asarray(p_spam), p_spam], axis=1)


def test_validate_evaluates_through_mlflow_with_spam_as_positive_in_the_active_run(tracking):
    with mlflow.start_run() as run:
        scores = evaluation.evaluate(SMS, ["a", "b", "c", "d"], [0, 0, 1, 1], np.array([0, 1, 1, 0]),
                                     spam_scores([0.1, 0.6, 0.9, 0.4]), "test_")
    assert {key: scores[key] for key in evaluation.PROJECT_NAMES} == \
        {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.75}
    assert scores["f1_ham"] == scores["f1_spam"] == scores["macro_f1"] == 0.5
    with mlflow.start_run() as other:
        ham_heavy = evaluation.evaluate(SMS, ["a", "b", "c", "d"], [0, 0, 0, 1], [0, 0, 1, 1],
                                        spam_scores([0.1, 0.2, 0.6, 0.9]), "baseline_")
    assert ham_heavy["f1"] == pytest.approx(2 / 3) and ham_heavy["precision"] == 0.5  # spam's, not ham's 0.8
    logged = tracking.get_run(run.info.run_id).data.metrics
    assert {f"test_{name}" for name in scores} | {"test_f1_score", "test_true_positives"} <= set(logged)
    assert logged["test_f1"] == logged["test_f1_score"] == 0.5
    assert [a.path for a in tracking.list_artifacts(run.info.run_id)] == ["test_confusion_matrix.png"]
    assert len(tracking.search_runs([run.info.experiment_id])) == 2  # evaluate made no runs of its own
    assert other.info.run_id != run.info.run_id


def test_validate_evaluates_more_classes_macro_with_each_class_and_their_confusion_matrix(tracking):
    task = Task(("billing", "bug", "praise"))
    probabilities = np.array([[.8, .1, .1], [.7, .2, .1], [.1, .8, .1], [.5, .4, .1], [.1, .1, .8], [.1, .5, .4]])
    with mlflow.start_run() as run:
        scores = evaluation.evaluate(task, list("abcdef"), [0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 2, 1], probabilities,
                                     "test_")
    assert scores["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3) == scores["macro_f1"]  # MLflow's macro F1
    assert scores["roc_auc"] == pytest.approx((1 + 7 / 8 + 1) / 3) and scores["recall_bug"] == 0.5
    logged = tracking.get_run(run.info.run_id).data.metrics
    assert logged["test_f1_score"] == pytest.approx(scores["f1"]) and logged["test_f1_praise"] == pytest.approx(2 / 3)
    assert [a.path for a in tracking.list_artifacts(run.info.run_id)] == ["test_confusion_matrix.png",
                                                                         "test_per_class_metrics.json"]
