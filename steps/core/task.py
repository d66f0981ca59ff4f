"""The classification task, read from the data once: the label set and its order, the positive
label of a binary task, whether a text carries one label or several tags (multi-label), how
scores are averaged, and whether a row is one text or a pair.
`prepare` writes it as task.json beside the splits; every later step reads it from there (or
from the registered model's metadata)."""

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from steps.core.errors import PipelineError
from steps.core.reading import Reading
from steps.served import text_classifier

FILE = "task.json"
SMS_LABELS = ("ham", "spam")  # the demo's labels keep ham = 0, spam = 1, and spam as the positive class
FREE_TEXT_SHARE = 0.5         # more distinct labels than this share of the rows reads as text, not classes
TAG_SEPARATOR = "|"           # how a multi-label task writes a text's tags in one field, unless the data says otherwise
THRESHOLD = 0.5               # a tag is answered when its probability reaches this (or its tuned threshold)


@dataclass(frozen=True)
class Task:
    labels: tuple[str, ...]          # label id i is labels[i]
    positive_label: str | None = None  # binary tasks only: the class whose F1, precision and recall are scored
    examples: tuple = field(default=(), compare=False)  # a text (or pair) of each of the first classes: the
    # registered model's input example
    reading: Reading | None = field(default=None, compare=False)  # how tokenize read the texts (None before it)
    pair_columns: tuple[str, str] | None = None  # a text-pair task: the data's two text columns, which the
    # served model takes by name (the prepared splits hold them as `text` and `text_pair`)
    multi_label: bool = False  # each text carries any number of the labels (its tags), each scored on its own
    label_separator: str = field(default=TAG_SEPARATOR, compare=False)  # multi-label: between a field's tags
    thresholds: tuple[float, ...] | None = field(default=None, compare=False)  # multi-label: each tag's, when
    # train tuned them on the validation split (None: THRESHOLD for every tag)
    blend_weight: float = field(default=0.0, compare=False)  # the lexical model's share of the served
    # probabilities, as train picked it on the validation split (steps/core/blend.py; 0: the encoder alone)

    @property
    def is_binary(self) -> bool:
        return len(self.labels) == 2 and not self.multi_label

    @property
    def average(self) -> str:
        """How precision, recall and F1 are averaged: the positive class's own, or the classes' (tags') mean.
        A multi-label task is scored by macro F1 too: each tag counts alike, so a rare tag the model never
        answers shows, where micro F1 (also logged) would be carried by the frequent ones."""
        return "binary" if self.is_binary else "macro"

    @property
    def f1_name(self) -> str:
        """What a reader calls the gated F1: `spam F1`, or `macro F1`."""
        return f"{self.positive_label} F1" if self.is_binary else "macro F1"

    @property
    def kind(self) -> str:
        """What the labels are, for messages: `2 classes`, `5 tags`."""
        return f"{len(self.labels)} {'tags' if self.multi_label else 'classes'}"

    @property
    def cutoffs(self) -> np.ndarray:
        """A multi-label task's decision thresholds, one a tag."""
        return np.asarray(self.thresholds or (THRESHOLD,) * len(self.labels))

    def decide(self, probabilities) -> np.ndarray:
        """The answers to rows of label probabilities: the likeliest class's id, or (multi-label) a row
        of 0/1 a tag, 1 where its probability reaches its threshold."""
        if self.multi_label:
            return text_classifier.answered_tags(probabilities, self.cutoffs).astype("int64")
        return np.asarray(probabilities).argmax(axis=1)

    def targets(self, labels) -> np.ndarray:
        """A split's label column as arrays: ids, or (multi-label) an n x tags matrix of 0/1."""
        labels = list(labels)
        if self.multi_label:
            return np.array(labels, dtype="int64").reshape(len(labels), len(self.labels))
        return np.asarray(labels, dtype="int64")

    def named(self, answers) -> list:
        """Answers (ids, or 0/1 rows) as label names: one a text, or (multi-label) a list of its tags."""
        if self.multi_label:
            return [[label for label, on in zip(self.labels, row) if on] for row in np.asarray(answers)]
        return [self.labels[i] for i in np.asarray(answers)]

    def counts(self, labels) -> dict[str, int]:
        """Rows of each class (or carrying each tag) in a split's label column."""
        targets = self.targets(labels)
        found = targets.sum(axis=0) if self.multi_label else np.bincount(targets, minlength=len(self.labels))
        return {label: int(n) for label, n in zip(self.labels, found)}

    def wrong(self, labels, answers) -> np.ndarray:
        """Which rows are answered otherwise than labelled (multi-label: any tag missed or added)."""
        differs = np.asarray(labels) != np.asarray(answers)
        return differs.any(axis=1) if differs.ndim == 2 else differs

    @property
    def positive_id(self) -> int | None:
        return self.labels.index(self.positive_label) if self.is_binary else None

    @property
    def inputs_name(self) -> str:
        """What a row is, for messages: `single texts` or `text pairs (subject, body)`."""
        return f"text pairs ({', '.join(self.pair_columns)})" if self.pair_columns else "single texts"

    @property
    def read_as(self) -> Reading:
        """How the model reads a text: as tokenize recorded it, or tokenize's defaults for a task
        recorded before it did."""
        return self.reading or Reading()

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def is_sms_spam(self) -> bool:
        return self.labels == SMS_LABELS

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "positive_label": self.positive_label, "average": self.average,
                "examples": [list(example) if self.pair_columns else example for example in self.examples],
                **({"reading": asdict(self.reading)} if self.reading else {}),
                **({"pair_columns": list(self.pair_columns)} if self.pair_columns else {}),
                **({"multi_label": True, "label_separator": self.label_separator} if self.multi_label else {}),
                **({"thresholds": list(self.thresholds)} if self.thresholds else {}),
                **({"blend_weight": self.blend_weight} if self.blend_weight else {})}

    @classmethod
    def from_dict(cls, fields: dict) -> "Task":
        reading = Reading(**fields["reading"]) if "reading" in fields else None
        pair_columns = tuple(fields["pair_columns"]) if "pair_columns" in fields else None
        examples = tuple(tuple(example) if pair_columns else example for example in fields.get("examples", ()))
        thresholds = tuple(fields["thresholds"]) if "thresholds" in fields else None
        return cls(tuple(fields["labels"]), fields.get("positive_label"), examples, reading, pair_columns,
                   fields.get("multi_label", False), fields.get("label_separator", TAG_SEPARATOR), thresholds,
                   fields.get("blend_weight", 0.0))

    def model_input(self, frame: pd.DataFrame):
        """What the served model takes for the rows of a prepared split (or checks file): its texts,
        or for a pair task a DataFrame of the two texts under the data's column names."""
        if self.pair_columns:
            return frame[["text", "text_pair"]].set_axis(list(self.pair_columns), axis=1)
        return frame["text"]

    def ids(self, names: pd.Series, what: str = "the data") -> pd.Series:
        """Label names as ids, or (multi-label) each row's tags (a list, or a field of tags joined by the
        task's separator) as a list of 0/1 a tag; a one-line error naming any label the task does not have."""
        if self.multi_label:
            tags = tag_lists(names, self.label_separator, what)
            unknown = tags.explode().dropna()
            unknown = unknown[~unknown.isin(self.labels)].value_counts()
        else:
            names = label_names(names)
            unknown = names[~names.isin(self.labels)].value_counts()
        if len(unknown):
            raise PipelineError(f"{what} has {'tags' if self.multi_label else 'labels'} the task does not know: "
                                f"{counts_text(unknown)}; the task's {'tags' if self.multi_label else 'labels'} are "
                                f"{', '.join(self.labels)}")
        if self.multi_label:
            return tags.map(lambda row: [int(label in row) for label in self.labels])
        return names.map(self.label2id).astype("int64")


def write_task(task: Task, folder) -> None:
    (Path(folder) / FILE).write_text(json.dumps(task.to_dict()))


def read_task(folder) -> Task:
    return Task.from_dict(json.loads((Path(folder) / FILE).read_text()))


def metric_key(label: str) -> str:
    """A label as it may stand in an MLflow metric name (`f1_<label>`)."""
    return re.sub(r"[^0-9A-Za-z_.\-]+", "_", str(label))


def counts_text(counts: pd.Series, shown: int = 8) -> str:
    items = [f"'{label}' {int(n)}" for label, n in counts.head(shown).items()]
    return ", ".join(items) + (f" and {len(counts) - shown} more" if len(counts) > shown else "")


def label_names(values: pd.Series) -> pd.Series:
    """Labels as strings: whole numbers (1, 1.0, "1") as "1", ham/spam in any case as ham/spam,
    anything else stripped of surrounding space. Empty labels are a one-line error."""
    text = values.astype(str).str.strip()
    empty = values.isna() | (text == "") | (text.str.lower() == "nan")
    if empty.any():
        raise PipelineError(f"{int(empty.sum())} of {len(values)} rows have no label: fill them in or drop those "
                            "rows (or set label_column if the wrong column was picked)")
    numbers = pd.to_numeric(text, errors="coerce")
    if numbers.notna().all() and (numbers % 1 == 0).all():
        return numbers.astype("int64").astype(str)
    if set(text.str.lower()) <= set(SMS_LABELS):
        return text.str.lower()
    return text


def is_list(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def is_tag_column(values: pd.Series, separator: str = "") -> bool:
    """A multi-label column: lists (Parquet, JSON arrays), or label_separator given."""
    return bool(separator) or bool(values.map(is_list).any())


def tag_lists(values: pd.Series, separator: str, what: str = "the label column") -> pd.Series:
    """Each row's tags as a tuple of names: from lists, or from strings split at `separator`.
    A missing or empty field is a text without tags. One-line errors for lists in some rows and
    plain labels in others, and for an empty tag name."""
    lists = values.map(is_list)
    missing = values.map(lambda value: not is_list(value) and (value is None or value != value or
                                                               str(value).strip() == ""))
    if lists.any() and not (lists | missing).all():
        plain = values[~(lists | missing)]
        raise PipelineError(f"{what} holds lists of tags in {int(lists.sum())} rows and plain labels in {len(plain)} "
                            f"(e.g. {plain.iloc[0]!r}): write every row's tags as a list (an empty one for none)")
    if lists.any():
        tags = values.map(lambda value: tuple(str(tag).strip() for tag in value) if is_list(value) else ())
    else:
        tags = values.map(lambda value: () if not isinstance(value, str) and (value is None or value != value) else
                          tuple(tag.strip() for tag in str(value).split(separator)) if str(value).strip() else ())
    empty = tags.map(lambda row: "" in row)
    if empty.any():
        raise PipelineError(f"{int(empty.sum())} rows of {what} name an empty tag (e.g. {values[empty].iloc[0]!r}): "
                            f"remove the stray '{separator or ','}' or name the tag")
    return tags.map(lambda row: tuple(dict.fromkeys(row)))  # a tag named twice in a row counts once


def label_order(names: pd.Series) -> tuple[str, ...]:
    """ham, spam for the demo; whole numbers by value; other labels alphabetically (as HF's
    run_classification.py sorts them), so the order does not depend on the rows' order."""
    found = set(names)
    if found == set(SMS_LABELS):
        return SMS_LABELS
    if all(re.fullmatch(r"-?\d+", label) for label in found):
        return tuple(sorted(found, key=int))
    return tuple(sorted(found))


def infer_task(labels: pd.Series, given_labels: str = "", positive_label: str = "") -> Task:
    """The task of a label column. given_labels (comma-separated) fixes the order and must name
    every label present; positive_label picks a binary task's positive class (default: spam for
    ham/spam, else the less frequent class)."""
    names = label_names(labels)
    counts = names.value_counts()
    if len(counts) > 2 and len(counts) > FREE_TEXT_SHARE * len(names):
        raise PipelineError(f"the label column has {len(counts)} distinct values in {len(names)} rows "
                            f"({counts_text(counts, 3)}): that is free text, not classes; set label_column "
                            "to the column that holds the labels")
    if given_labels:
        order = tuple(label.strip() for label in given_labels.split(",") if label.strip())
        other = counts[~counts.index.isin(order)]
        if len(other):
            raise PipelineError(f"rows with labels not in labels={given_labels}: {counts_text(other)}; "
                                "add them to labels, or remove those rows from the data")
        absent = [label for label in order if label not in counts.index]
        if absent or len(set(order)) != len(order):
            raise PipelineError(f"labels={given_labels} names {', '.join(absent) or 'a label twice'}"
                                f"{' without rows' if absent else ''}: list each label of the data once "
                                f"(found {counts_text(counts)})")
    else:
        order = label_order(names)
    if len(order) < 2:
        raise PipelineError(f"the label column holds one class only ({counts_text(counts)}): a classifier needs "
                            "two or more; check the data, or set label_column")
    if len(order) > 2:
        if positive_label:
            raise PipelineError(f"positive_label={positive_label} is for binary tasks; this one has "
                                f"{len(order)} classes ({', '.join(order)}), scored by macro F1: leave it empty")
        return Task(order)
    if positive_label and positive_label not in order:
        raise PipelineError(f"positive_label={positive_label} is not among the labels ({counts_text(counts)}): "
                            "set it to one of them")
    if not positive_label:
        positive_label = "spam" if order == SMS_LABELS else min(reversed(order), key=lambda label: counts[label])
    return Task(order, positive_label)


def infer_tags(values: pd.Series, separator: str, given_labels: str = "", positive_label: str = "") -> Task:
    """The multi-label task of a label column of lists or separated tags: the tags in the order
    given_labels fixes (comma-separated, every tag present), else alphabetically."""
    if positive_label:
        raise PipelineError(f"positive_label={positive_label} is for binary tasks; a multi-label task is scored by "
                            "macro F1 over its tags: leave it empty")
    tags = tag_lists(values, separator)
    if separator and not tags.map(len).gt(1).any():
        raise PipelineError(f"label_separator={separator!r} splits no label into two tags (e.g. {values.iloc[0]!r}): "
                            "set it to the character between a row's tags, or leave it empty for one label a row")
    counts = tags.explode().dropna().value_counts()
    order = tuple(label.strip() for label in given_labels.split(",") if label.strip()) or tuple(sorted(counts.index))
    other, absent = counts[~counts.index.isin(order)], [label for label in order if label not in counts.index]
    if len(other):
        raise PipelineError(f"rows with tags not in labels={given_labels}: {counts_text(other)}; add them to labels, "
                            "or remove those tags from the data")
    if absent or len(set(order)) != len(order):
        raise PipelineError(f"labels={given_labels} names {', '.join(absent) or 'a tag twice'}"
                            f"{' without rows' if absent else ''}: list each tag of the data once "
                            f"(found {counts_text(counts)})")
    if len(order) < 2:
        raise PipelineError(f"the label column holds one tag only ({counts_text(counts)}): a classifier needs two "
                            "or more; check the data, or set label_column")
    return Task(order, multi_label=True, label_separator=separator or TAG_SEPARATOR)


def check_splittable(counts: pd.Series, test_size: float, validation_size: float, what: str = "class") -> None:
    """Every class (or tag) needs a row in each of train, validation and test: a one-line error
    naming the smallest and the row count it needs."""
    smallest_share = min(test_size, validation_size, 1 - test_size - validation_size)
    needed = max(3, math.ceil(1 / smallest_share - 1e-9))
    small = counts[counts < needed]
    if len(small):
        raise PipelineError(f"too few rows of {counts_text(small)} to split stratified into train/validation/"
                            f"test (sizes {1 - test_size - validation_size:g}/{validation_size:g}/{test_size:g} need "
                            f"{needed} rows of each {what}; all {'tags' if what == 'tag' else 'classes'}: "
                            f"{counts_text(counts)}): add rows of that {what}, remove its rows, or raise "
                            "test_size/validation_size")
