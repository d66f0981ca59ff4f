"""The classification task, read from the data once: the label set and its order, the positive
label of a binary task, how scores are averaged, and whether a row is one text or a pair.
`prepare` writes it as task.json beside the splits; every later step reads it from there (or
from the registered model's metadata)."""

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from steps.core.errors import PipelineError
from steps.core.reading import Reading

FILE = "task.json"
SMS_LABELS = ("ham", "spam")  # the demo's labels keep ham = 0, spam = 1, and spam as the positive class
FREE_TEXT_SHARE = 0.5         # more distinct labels than this share of the rows reads as text, not classes


@dataclass(frozen=True)
class Task:
    labels: tuple[str, ...]          # label id i is labels[i]
    positive_label: str | None = None  # binary tasks only: the class whose F1, precision and recall are scored
    examples: tuple = field(default=(), compare=False)  # a text (or pair) of each of the first classes: the
    # registered model's input example
    reading: Reading | None = field(default=None, compare=False)  # how tokenize read the texts (None before it)
    pair_columns: tuple[str, str] | None = None  # a text-pair task: the data's two text columns, which the
    # served model takes by name (the prepared splits hold them as `text` and `text_pair`)

    @property
    def is_binary(self) -> bool:
        return len(self.labels) == 2

    @property
    def average(self) -> str:
        """How precision, recall and F1 are averaged: the positive class's own, or the classes' mean."""
        return "binary" if self.is_binary else "macro"

    @property
    def f1_name(self) -> str:
        """What a reader calls the gated F1: `spam F1`, or `macro F1`."""
        return f"{self.positive_label} F1" if self.is_binary else "macro F1"

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
                **({"pair_columns": list(self.pair_columns)} if self.pair_columns else {})}

    @classmethod
    def from_dict(cls, fields: dict) -> "Task":
        reading = Reading(**fields["reading"]) if "reading" in fields else None
        pair_columns = tuple(fields["pair_columns"]) if "pair_columns" in fields else None
        examples = tuple(tuple(example) if pair_columns else example for example in fields.get("examples", ()))
        return cls(tuple(fields["labels"]), fields.get("positive_label"), examples, reading, pair_columns)

    def model_input(self, frame: pd.DataFrame):
        """What the served model takes for the rows of a prepared split (or checks file): its texts,
        or for a pair task a DataFrame of the two texts under the data's column names."""
        if self.pair_columns:
            return frame[["text", "text_pair"]].set_axis(list(self.pair_columns), axis=1)
        return frame["text"]

    def ids(self, names: pd.Series, what: str = "the data") -> pd.Series:
        """Label names as ids; a one-line error naming any label the task does not have."""
        names = label_names(names)
        unknown = names[~names.isin(self.labels)].value_counts()
        if len(unknown):
            raise PipelineError(f"{what} has labels the task does not know: {counts_text(unknown)}; "
                                f"the task's labels are {', '.join(self.labels)}")
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


def check_splittable(counts: pd.Series, test_size: float, validation_size: float) -> None:
    """Every class needs a row in each of train, validation and test: a one-line error naming
    the smallest class and the row count it needs."""
    smallest_share = min(test_size, validation_size, 1 - test_size - validation_size)
    needed = max(3, math.ceil(1 / smallest_share - 1e-9))
    small = counts[counts < needed]
    if len(small):
        raise PipelineError(f"too few rows of {counts_text(small)} to split stratified into train/validation/test "
                            f"(sizes {1 - test_size - validation_size:g}/{validation_size:g}/{test_size:g} need "
                            f"{needed} rows of each class; all classes: {counts_text(counts)}): add rows of that "
                            "class, remove its rows, or raise test_size/validation_size")
