"""The task read from the data (labels, order, positive label), each bad label column, and the
task's metrics: the core alone, no tracking store."""

import numpy as np
import pandas as pd
import pytest

from steps.core import data
from steps.core.errors import PipelineError
from steps.core.metrics import classification_metrics
from steps.core.task import Task, infer_task, label_names, read_task, write_task
from tests.helpers import assert_one_line


def series(*counts):
    """A label column with `count` rows of each (label, count) pair."""
    return pd.Series([label for label, count in counts for _ in range(count)])


def test_sms_labels_in_any_case_keep_ham_0_and_spam_1_and_spam_positive():
    task = infer_task(pd.Series(["ham", "SPAM", " Spam ", "Ham", "ham"]))
    assert task == Task(("ham", "spam"), "spam") and task.label2id == {"ham": 0, "spam": 1}
    assert task.f1_name == "spam F1" and task.average == "binary" and task.is_sms_spam


def test_other_binary_labels_are_sorted_and_the_rarer_class_is_positive():
    task = infer_task(series(("positive", 30), ("negative", 70)))
    assert task.labels == ("negative", "positive") and task.positive_label == "positive"
    assert infer_task(series(("positive", 70), ("negative", 30))).positive_label == "negative"
    assert infer_task(series(("positive", 70), ("negative", 30)),
                      positive_label="positive").positive_label == "positive"
    assert not task.is_sms_spam


def test_integer_labels_in_any_form_are_ordered_by_value():
    assert label_names(pd.Series([2, 10.0, "1", " 2 "])).tolist() == ["2", "10", "1", "2"]
    task = infer_task(series(("10", 5), ("2", 5), ("1", 9)))
    assert task.labels == ("1", "2", "10") and task.positive_label is None and task.f1_name == "macro F1"
    assert infer_task(series((0, 40), (1, 10))) == Task(("0", "1"), "1")


def test_labels_option_fixes_the_order():
    task = infer_task(series(("c", 5), ("a", 5), ("b", 5)), given_labels="c, b,a")
    assert task.labels == ("c", "b", "a") and task.average == "macro"
    assert task.ids(pd.Series(["a", "c"])).tolist() == [2, 0]


@pytest.mark.parametrize("labels, given, positive, message", [
    (series(("ham", 9)), "", "", r"^the label column holds one class only \('ham' 9\): a classifier needs two or more"),
    (pd.Series([f"text number {i}" for i in range(10)]), "", "",
     r"^the label column has 10 distinct values in 10 rows \('text number 0' 1, .*\): that is free text, not "
     r"classes; set label_column"),
    (series(("a", 5), ("b", 5), ("phishing", 2)), "a,b", "",
     r"^rows with labels not in labels=a,b: 'phishing' 2; add them to labels, or remove those rows"),
    (series(("a", 5), ("b", 5)), "a,b,c", "", r"^labels=a,b,c names c without rows"),
    (series(("a", 5), ("b", 5)), "", "c", r"^positive_label=c is not among the labels \('a' 5, 'b' 5\): set it"),
    (series(("a", 5), ("b", 5), ("c", 5)), "", "a", r"^positive_label=a is for binary tasks; this one has 3 classes"),
    (pd.Series(["a", None, "b", "a", "b"]), "", "", r"^1 of 5 rows have no label: fill them in or drop those rows"),
])
def test_each_bad_label_column_is_one_line_naming_labels_and_counts(labels, given, positive, message):
    with pytest.raises(PipelineError, match=message) as error:
        infer_task(labels, given, positive)
    assert_one_line(str(error.value))


def test_labels_the_task_does_not_know_are_named():
    with pytest.raises(PipelineError, match=r"^checks file x.csv has labels the task does not know: 'maybe' 2; "
                                            r"the task's labels are ham, spam"):
        Task(("ham", "spam"), "spam").ids(pd.Series(["ham", "maybe", "maybe"]), "checks file x.csv")


def test_task_round_trips_through_its_file(tmp_path):
    task = Task(("b", "a", "c"), examples=("one", "two"))
    write_task(task, tmp_path)
    assert read_task(tmp_path) == task and read_task(tmp_path).examples == ("one", "two")
    assert read_task(tmp_path).to_dict()["average"] == "macro"


def test_three_classes_split_stratified_keep_every_class_in_every_split():
    frame = pd.DataFrame({"text": [f"m{i}" for i in range(60)], "label": ["x"] * 30 + ["y"] * 20 + ["z"] * 10})
    splits = data.split_stratified(frame, 0.2, 0.1, seed=3)
    assert all(set(part["label"]) == {"x", "y", "z"} for part in splits.values())


def test_binary_metrics_score_the_positive_class():
    task = Task(("ham", "spam"), "spam")
    scores = classification_metrics(task, [0, 0, 1, 1], [0, 1, 1, 0],
                                    np.array([[0.9, 0.1], [0.4, 0.6], [0.1, 0.9], [0.6, 0.4]]))
    assert scores["f1"] == scores["precision"] == scores["recall"] == 0.5 and scores["roc_auc"] == 0.75
    assert scores["accuracy"] == 0.5 and scores["f1_ham"] == 0.5 and scores["macro_f1"] == 0.5


def test_multiclass_metrics_are_macro_with_each_class_and_one_vs_rest_auc():
    task = Task(("billing", "bug", "praise"))
    labels, predicted = [0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 2, 1]
    probabilities = np.array([[.8, .1, .1], [.7, .2, .1], [.1, .8, .1], [.5, .4, .1], [.1, .1, .8], [.1, .5, .4]])
    scores = classification_metrics(task, labels, predicted, probabilities)
    assert scores["f1_billing"] == pytest.approx(0.8) and scores["f1_bug"] == 0.5 and \
        scores["f1_praise"] == pytest.approx(2 / 3)
    assert scores["f1"] == scores["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert scores["precision"] == pytest.approx((2 / 3 + 0.5 + 1) / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["roc_auc"] == pytest.approx((1 + 7 / 8 + 1) / 3)  # bug: 0.4 ranks below a billing 0.5
    assert "roc_auc" not in classification_metrics(task, [0, 0, 1], [0, 0, 1], probabilities[:3])  # a class absent
