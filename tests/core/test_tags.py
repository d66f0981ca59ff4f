"""Multi-label tasks in the core: tags read from lists or separated strings, a split that keeps
every tag in every split, scikit-learn's multi-label metrics, the one-vs-rest baseline, tuned
thresholds (on validation answers that keep each text's tags), weighted binary cross-entropy,
and the one-line errors of bad tag data."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from steps.core import baseline, data, gate, tokens
from steps.core.errors import PipelineError
from steps.core.metrics import classification_metrics, tuned_thresholds
from steps.core.reading import Reading
from steps.core.recipe import Recipe
from steps.core.specs import Preparation
from steps.core.task import Task, infer_tags, tag_lists
from steps.core.training import fine_tune, validation_probabilities, weighted_loss
from tests.helpers import assert_one_line, tagged_tickets, written

TAGS = Task(("billing", "bug", "praise"), multi_label=True)


def tagged_frame(rows=None):
    rows = rows or tagged_tickets()
    return pd.DataFrame({"text": [text for _, text in rows], "tags": [tags for tags, _ in rows]})


def test_tags_come_from_lists_or_from_strings_split_at_the_separator():
    assert tag_lists(pd.Series([["b", "a"], [], None, ("c",)]), "").tolist() == [("b", "a"), (), (), ("c",)]
    assert tag_lists(pd.Series(["b| a", "", "c", float("nan"), "a|a"]), "|").tolist() == [
        ("b", "a"), (), ("c",), (), ("a",)]
    task = infer_tags(pd.Series(["b|a", "c", ""]), "|")
    assert task == Task(("a", "b", "c"), multi_label=True) and task.f1_name == "macro F1" and not task.is_binary
    assert infer_tags(pd.Series([["b", "a"], ["c"]]), "", given_labels="c,b,a").labels == ("c", "b", "a")


@pytest.mark.parametrize("labels, separator, fragments", [
    (pd.Series([["a", "b"], "c", ["a"]]), "", ["lists of tags in 2 rows and plain labels in 1 (e.g. 'c')",
                                              "write every row's tags as a list"]),
    (pd.Series(["a", "b", "a"]), ";", ["label_separator=';' splits no label into two tags",
                                       "set it to the character between a row's tags"]),
    (pd.Series(["a|b", "a||c"]), "|", ["1 rows of the label column name an empty tag (e.g. 'a||c')",
                                       "remove the stray '|'"]),
    (pd.Series(["a|b", "b|c"]), "|", None),  # with positive_label below
])
def test_bad_tag_data_is_one_line_naming_what_to_change(labels, separator, fragments):
    if fragments is None:
        with pytest.raises(PipelineError) as error:
            infer_tags(labels, separator, positive_label="a")
        assert_one_line(str(error.value), "positive_label=a is for binary tasks", "leave it empty")
        return
    with pytest.raises(PipelineError) as error:
        infer_tags(labels, separator)
    assert_one_line(str(error.value), *fragments)


@pytest.mark.parametrize("given, fragments", [
    ("a,b", ["rows with tags not in labels=a,b: 'c' 1", "add them to labels"]),
    ("a,b,c,d", ["labels=a,b,c,d names d without rows", "list each tag of the data once"]),
    ("a,b,c,a", ["labels=a,b,c,a names a tag twice"])])
def test_labels_must_name_each_tag_of_the_data_once(given, fragments):
    assert infer_tags(pd.Series(["a|b", "c"]), "|", given_labels="c,a,b").labels == ("c", "a", "b")
    with pytest.raises(PipelineError) as error:
        infer_tags(pd.Series(["a|b", "c"]), "|", given_labels=given)
    assert_one_line(str(error.value), *fragments)


def test_prepare_keeps_untagged_texts_and_every_tag_in_every_split():
    clean, task, splits, counts = data.prepare(tagged_frame(), Preparation(label_column="tags", label_separator="|"),
                                               seed=3)
    assert task.multi_label and task.labels == ("billing", "bug", "praise") and task.label_separator == "|"
    assert counts["untagged"] == int((clean["label"].map(len) == 0).sum()) > 0
    assert sum(map(len, splits.values())) == len(clean)
    whole = task.targets(pd.concat(splits.values())["label"]).mean(axis=0)
    for name, part in splits.items():
        targets = task.targets(part["label"])
        assert targets.shape == (len(part), 3) and set(np.unique(targets)) == {0, 1}
        assert (targets.sum(axis=0) > 0).all(), name
        assert np.abs(targets.mean(axis=0) - whole).max() < 0.1, name  # each tag's share as in the whole
    assert len(task.examples) == 2 and task.examples[0] == splits["train"]["text"][0]


def test_a_label_column_of_lists_in_parquet_is_multi_label_without_a_separator(tmp_path):
    rows = tagged_tickets()
    frame = pd.DataFrame({"text": [t for _, t in rows], "label": [tags.split("|") if tags else [] for tags, _ in rows]})
    frame.to_parquet(tmp_path / "tagged.parquet")
    _, task, splits, _ = data.prepare(data.read_table(tmp_path / "tagged.parquet"), Preparation(), seed=3)
    assert task.multi_label and task.labels == ("billing", "bug", "praise")
    assert task.named(task.targets(splits["test"]["label"]))[:3] == [
        sorted(tags, key=task.labels.index) for tags in splits["test"]["text"].map(
            dict((text, tags.split("|") if tags else []) for tags, text in rows))[:3]]


def test_a_tag_too_rare_to_split_is_named_with_its_count():
    rows = tagged_tickets() + [("billing|refund", "A refund request for my plan, please"),
                               ("refund", "Another refund, the basic plan")]
    with pytest.raises(PipelineError) as error:
        data.prepare(tagged_frame(rows), Preparation(label_column="tags", label_separator="|"), seed=3)
    assert_one_line(str(error.value), "too few rows of 'refund' 2 to split stratified",
                    "need 10 rows of each tag", "add rows of that tag, remove its rows")


def test_multi_label_metrics_are_scikit_learns_by_the_projects_names():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 0, 0]])
    answers = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1], [0, 1, 0]])
    scores = classification_metrics(TAGS, labels, answers, probabilities=labels * 0.8 + 0.1)
    assert scores["accuracy"] == 0.5  # subset accuracy: rows 1 and 3 are right in every tag
    assert scores["hamming_loss"] == pytest.approx(2 / 12)
    assert scores["f1_billing"] == 1 and scores["f1_bug"] == 0 and scores["f1_praise"] == 1
    assert scores["f1"] == scores["macro_f1"] == pytest.approx(2 / 3)
    assert scores["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 2))  # 3 right tags, 1 missed, 1 added
    assert scores["roc_auc"] == 1


def test_decisions_use_each_tags_threshold_and_the_task_file_keeps_them():
    task = Task(TAGS.labels, multi_label=True, thresholds=(0.3, 0.5, 0.9))
    answers = task.decide([[0.35, 0.5, 0.8], [0.1, 0.2, 0.95]])
    assert answers.tolist() == [[1, 1, 0], [0, 0, 1]] and task.named(answers) == [["billing", "bug"], ["praise"]]
    assert task.wrong([[1, 1, 0], [0, 0, 0]], answers).tolist() == [False, True]
    assert Task.from_dict(task.to_dict()) == task == TAGS  # thresholds are not part of what the task is
    assert Task.from_dict(task.to_dict()).thresholds == (0.3, 0.5, 0.9)
    assert TAGS.decide([[0.5, 0.49, 0.51]]).tolist() == [[1, 0, 1]]  # 0.5 untuned


def test_tuned_thresholds_find_each_tags_best_cut():
    probabilities = np.array([[0.2, 0.9], [0.3, 0.8], [0.1, 0.7], [0.05, 0.4]])
    labels = np.array([[1, 1], [1, 1], [0, 1], [0, 0]])
    assert tuned_thresholds(labels, probabilities) == (0.2, 0.5)  # the first tag's texts all sit below 0.5


def test_the_baseline_is_one_svm_a_tag():
    _, task, splits, _ = data.prepare(tagged_frame(), Preparation(label_column="tags", label_separator="|"), seed=3)
    answers, scores = baseline.baseline_predictions(splits["train"], splits["test"], task)
    assert answers.shape == scores.shape == (len(splits["test"]), 3) and ((scores > 0) & (scores < 1)).all()
    assert classification_metrics(task, task.targets(splits["test"]["label"]), answers)["f1"] > 0.9


def test_balanced_weights_of_tags_weigh_a_tags_texts_by_its_negatives_over_its_positives():
    loss = weighted_loss([[1, 0], [1, 0], [1, 1], [0, 0]], 2)  # pos_weight 1/3 and 3
    logits, labels = torch.zeros(1, 2), torch.tensor([[1.0, 1.0]])
    expected = torch.log(torch.tensor(2.0)) * (1 / 3 + 3) / 2
    assert loss(type("Out", (), {"logits": logits})(), labels).item() == pytest.approx(expected.item())


def test_a_checks_file_with_tags_not_the_tasks_is_one_line(tmp_path):
    path = written(tmp_path / "checks.csv", "text,label\nmy invoice is wrong,billing|refund\nit crashes,bug\n")
    with pytest.raises(PipelineError) as error:
        gate.read_checks(str(path), TAGS)
    assert_one_line(str(error.value), "has tags the task does not know: 'refund' 1",
                    "the task's tags are billing, bug, praise")
    checks = gate.read_checks(str(written(tmp_path / "ok.csv", "text,label\nboth,billing|bug\nnone,\n")), TAGS)
    assert TAGS.named(TAGS.targets(checks["label"])) == [["billing", "bug"], []]


@pytest.mark.parametrize("reading", [Reading(max_length=64), Reading(max_length=16, long_text="chunks", stride=4)])
def test_validation_probabilities_pair_each_text_with_its_own_tags_in_the_splits_order(ticket_model, tmp_path, reading):
    """The Trainer scores the windows ordered by length (group_by_length) or in order (chunks); the
    saved checkpoint scored as served gives the validation texts' probabilities in the split's order,
    so that the best epoch's macro F1 is found again from them and the split's own labels, and the
    tuned thresholds score at least as well on the same texts."""
    _, task, splits, _ = data.prepare(tagged_frame(), Preparation(label_column="tags", label_separator="|"), seed=3)
    task = dataclasses.replace(task, reading=reading)
    tokenizer = AutoTokenizer.from_pretrained(str(ticket_model))
    tokenized, _ = tokens.tokenize_splits(DatasetDict({name: Dataset.from_pandas(part, preserve_index=False)
                                                      for name, part in splits.items()}), tokenizer, reading)
    trainer = fine_tune(tokenized, tokenizer, str(ticket_model), task, str(tmp_path), Recipe(
        epochs=3, batch_size=8, learning_rate=3e-3, warmup_ratio=0.1, precision="fp32", device="cpu"))
    trainer.save_model(str(tmp_path / "checkpoint"))
    probabilities = validation_probabilities(tmp_path / "checkpoint", task, splits["validation"], 16)
    labels = task.targets(splits["validation"]["label"])
    at_half = classification_metrics(task, labels, task.decide(probabilities), probabilities)["f1"]
    assert at_half == pytest.approx(trainer.state.best_metric, abs=1e-6)
    tuned = dataclasses.replace(task, thresholds=tuned_thresholds(labels, probabilities))
    assert classification_metrics(task, labels, tuned.decide(probabilities))["f1"] >= at_half
