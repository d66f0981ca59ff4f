"""Pure data functions for `prepare`: read a table, find its columns, name its labels (or each
text's tags), drop empty and repeated texts, split stratified, and the whole of it (`prepare`).
No MLflow, no command line."""

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.model_selection import train_test_split

from steps.core.errors import PipelineError
from steps.core.specs import Preparation
from steps.core.task import Task, check_splittable, infer_tags, infer_task, is_tag_column, label_names, tag_lists

# Column names seen in public copies of the SMS spam data (Hub, UCI, Kaggle's spam.csv).
TEXT_COLUMNS = ("text", "sms", "message", "messages", "content", "body", "v2")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "v1")

TABLE_SUFFIXES = {".csv", ".json", ".jsonl", ".parquet", ".tsv", ".txt", ""}
SPLITS = ("train", "validation", "test")  # prepare's output: one Parquet file each, and the task file
EXAMPLES = 2  # texts in the registered model's input example: the first train text of the first classes


def split_file(split: str) -> str:
    return f"{split}.parquet"


def read_table(path: str | Path, option: str = "dataset") -> pd.DataFrame:
    """Read one data file, or every data file in a folder, into one DataFrame.

    A file without a known suffix (like UCI's `SMSSpamCollection`) or a `.tsv`/`.txt` is read
    as UCI's `label<TAB>text` layout, without a header.
    """
    path = Path(path)
    if not path.exists():
        raise PipelineError(f"data file {path} does not exist: pass an existing file or folder as {option}")
    if path.is_dir():
        files = sorted(
            f for f in path.iterdir()
            if f.is_file() and f.suffix.lower() in TABLE_SUFFIXES and not f.name.upper().startswith(("README", "."))
        )
        if not files:
            raise PipelineError(f"folder {path} holds no data file (.csv, .json, .jsonl, .parquet or UCI text)")
        return pd.concat([read_table(f, option) for f in files], ignore_index=True)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return _read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return _read_json(path)
        # QUOTE_NONE: SMS texts hold stray quotes that must not start quoted fields.
        return pd.read_csv(path, sep="\t", header=None, names=["label", "text"], quoting=csv.QUOTE_NONE,
                           dtype=str, keep_default_na=False, on_bad_lines="error")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PipelineError(f"cannot read {path} as a {suffix or 'label<TAB>text'} table ({first_line}): "
                            "pass a UCI label<TAB>text file, CSV, JSON/JSONL or Parquet") from None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=False)
    except UnicodeDecodeError:  # Kaggle's spam.csv is Latin-1
        return pd.read_csv(path, keep_default_na=False, encoding="latin-1")


def _read_json(path: Path) -> pd.DataFrame:
    try:
        return pd.DataFrame(json.loads(path.read_text()))
    except json.JSONDecodeError:  # JSON Lines saved as .json
        return pd.read_json(path, lines=True)


def pick_column(columns, given: str, known, what: str, flag: str, required: bool = True) -> str | None:
    """The column `given`, else the first known name present; None when absent and not required."""
    columns = list(columns)
    if given:
        if given not in columns:
            raise PipelineError(f"{what} column '{given}' not found (columns: {', '.join(map(str, columns))}): "
                                f"set {flag} to one of them")
        return given
    by_lower = {str(c).lower(): c for c in columns}
    for name in known:
        if name in by_lower:
            return by_lower[name]
    if not required:
        return None
    raise PipelineError(f"no {what} column found (columns: {', '.join(map(str, columns))}): "
                        f"set {flag} to the column that holds the {what}")


def find_text_columns(columns, text_column: str = "") -> tuple[str, ...]:
    """The text column, or a pair's two (text_column `first,second`): the ones given, else the
    first known name present."""
    if "," not in text_column:
        return (pick_column(columns, text_column, TEXT_COLUMNS, "text", "text_column"),)
    names = tuple(name.strip() for name in text_column.split(","))
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise PipelineError(f"text_column={text_column} names {len(names)} columns: give one, or two different "
                            "ones as first,second (a text pair)")
    return tuple(pick_column(columns, name, TEXT_COLUMNS, "text", "text_column") for name in names)


def text_values(table: pd.DataFrame, column: str) -> pd.Series:
    """A text column as strings (missing: ""); a one-line error for a column of numbers, flags or lists."""
    values = table[column]
    containers = values.map(lambda value: isinstance(value, (list, tuple, dict)))
    kind = ("true/false flags" if is_bool_dtype(values) else "numbers" if is_numeric_dtype(values)
            else "lists" if containers.any() else None)
    if kind:
        example = values[containers].iloc[0] if kind == "lists" else values.iloc[0]
        raise PipelineError(f"column '{column}' holds {kind}, not text (e.g. {example}): set text_column to the "
                            "column of texts")
    return values.fillna("").astype(str)


def normalise(table: pd.DataFrame, text_column: str = "", label_column: str = "",
              label_separator: str = "") -> tuple[pd.DataFrame, tuple]:
    """A frame of `text` (str), for a pair task `text_pair` too, and `label`: the label's name (see
    task.label_names), or for a multi-label column (lists, or label_separator given) a tuple of the
    row's tags; and the data's text column names (two for a pair)."""
    text_columns = find_text_columns(table.columns, text_column)
    label_column = pick_column(table.columns, label_column, LABEL_COLUMNS, "label", "label_column")
    frame = pd.DataFrame(dict(zip(("text", "text_pair"), (text_values(table, column) for column in text_columns))))
    if "text_pair" in frame and (frame["text_pair"].str.strip() == "").all():
        raise PipelineError(f"the pair's second column '{text_columns[1]}' is empty in every row: set text_column "
                            "to the two columns that hold the texts, or to one column")
    labels = table[label_column]
    return frame.assign(label=tag_lists(labels, label_separator) if is_tag_column(labels, label_separator)
                        else label_names(labels)), text_columns


def text_columns_of(frame: pd.DataFrame) -> list[str]:
    """A prepared frame's text columns: `text`, and `text_pair` for a pair task."""
    return [column for column in ("text", "text_pair") if column in frame]


def unseen(frame: pd.DataFrame, seen: pd.DataFrame) -> np.ndarray:
    """Which rows of `frame` hold a text (a pair: both texts) that is not in `seen`: the rows a
    model trained and validated on `seen` can be fairly scored on."""
    columns = text_columns_of(frame)
    return ~pd.MultiIndex.from_frame(frame[columns]).isin(pd.MultiIndex.from_frame(seen[columns]))


def drop_empty_and_repeated(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Drop empty texts (a pair: both empty) and exact repeats (first kept), so no text is both in
    train and test."""
    text_columns = text_columns_of(frame)
    non_empty = frame[(frame[text_columns].apply(lambda column: column.str.strip()) != "").any(axis=1)]
    unique = non_empty.drop_duplicates(subset=text_columns, keep="first").reset_index(drop=True)
    counts = {"rows_read": len(frame), "empty_dropped": len(frame) - len(non_empty),
              "duplicates_dropped": len(non_empty) - len(unique), "rows_kept": len(unique)}
    if unique.empty:
        raise PipelineError("the data set has no non-empty text: check the file and text_column")
    return unique, counts


def iterative_split(tags: pd.Series, shares: tuple[float, ...], seed: int) -> np.ndarray:
    """Each row's split (an index into `shares`) by iterative stratification (Sechidis et al. 2011,
    "On the Stratification of Multi-Label Data"): the rarest tag left first, each of its rows to the
    split that still wants most of that tag (then most rows), so every tag's rows are shared out as
    the splits' sizes are. Rows without tags fill the splits' remaining room. Written here because
    scikit-multilearn's splitter cannot be seeded under today's scikit-learn; measured in docs/tags.md."""
    rng = np.random.default_rng(seed)
    names = sorted(set(tags.explode().dropna()))
    rows = np.array([[name in row for name in names] for row in tags], dtype=bool).reshape(len(tags), len(names))
    shares = np.asarray(shares)
    wanted_rows, wanted_tags = shares * len(rows), shares[:, None] * rows.sum(axis=0)[None, :]
    split = np.full(len(rows), -1)
    left = rows.copy()
    while left.any():
        counts = left.sum(axis=0).astype(float)
        counts[counts == 0] = np.inf
        tag = rng.choice(np.flatnonzero(counts == counts.min()))
        for row in rng.permutation(np.flatnonzero(left[:, tag])):
            best = np.flatnonzero(wanted_tags[:, tag] == wanted_tags[:, tag].max())
            best = best[wanted_rows[best] == wanted_rows[best].max()]
            chosen = rng.choice(best)
            split[row], left[row] = chosen, False
            wanted_rows[chosen] -= 1
            wanted_tags[chosen] -= rows[row]
    for row in rng.permutation(np.flatnonzero(split < 0)):
        chosen = rng.choice(np.flatnonzero(wanted_rows == wanted_rows.max()))
        split[row] = chosen
        wanted_rows[chosen] -= 1
    return split


def split_stratified(frame: pd.DataFrame, test_size: float, validation_size: float, seed: int,
                     multi_label: bool = False) -> dict[str, pd.DataFrame]:
    """train/validation/test with the class (or, multi_label, the tag) balance of the whole; sizes are
    fractions of the whole."""
    if not (0 < test_size < 1 and 0 < validation_size < 1 and test_size + validation_size < 1):
        raise PipelineError(f"test_size ({test_size}) and validation_size ({validation_size}) must be "
                            "fractions above 0 whose sum is below 1")
    counts = frame["label"].explode().value_counts() if multi_label else frame["label"].value_counts()
    check_splittable(counts, test_size, validation_size, "tag" if multi_label else "class")
    if multi_label:
        split = iterative_split(frame["label"], (1 - test_size - validation_size, validation_size, test_size), seed)
        train, validation, test = (frame[split == i] for i in range(3))
    else:
        rest, test = train_test_split(frame, test_size=test_size, stratify=frame["label"], random_state=seed)
        train, validation = train_test_split(rest, test_size=validation_size / (1 - test_size),
                                             stratify=rest["label"], random_state=seed)
    splits = {name: part.reset_index(drop=True)
              for name, part in (("train", train), ("validation", validation), ("test", test))}
    for name, part in splits.items():
        absent = counts.index.difference(part["label"].explode().dropna().unique()) if multi_label else []
        if len(absent):
            raise PipelineError(f"tag '{absent[0]}' ({counts[absent[0]]} rows) has no row in the {name} split: add "
                                "rows with it, remove it, or raise test_size/validation_size")
    return splits


def class_balance(frame: pd.DataFrame, task: Task) -> dict[str, int]:
    return task.counts(frame["label"])


def prepare(raw: pd.DataFrame, preparation: Preparation,
            seed: int) -> tuple[pd.DataFrame, Task, dict[str, pd.DataFrame], dict]:
    """The cleaned frame (label names), its task, its splits (label ids), and the counts of what was dropped."""
    frame, text_columns = normalise(raw, preparation.text_column, preparation.label_column,
                                    preparation.label_separator)
    clean, counts = drop_empty_and_repeated(frame)
    if is_tag_column(clean["label"], preparation.label_separator):
        task = infer_tags(clean["label"], preparation.label_separator, preparation.labels, preparation.positive_label)
        counts["untagged"] = int((clean["label"].map(len) == 0).sum())  # kept: "none of the tags" is an answer too
    else:
        task = infer_task(clean["label"], preparation.labels, preparation.positive_label)
    splits = split_stratified(clean, preparation.test_size, preparation.validation_size, seed, task.multi_label)
    # the input example: a text of each of the first classes (multi-label: the first texts)
    firsts = (splits["train"].head(EXAMPLES) if task.multi_label
              else splits["train"].groupby("label", sort=False).first().loc[list(task.labels[:EXAMPLES])])
    pair = "text_pair" in clean
    examples = tuple((row.text, row.text_pair) if pair else row.text for row in firsts.itertuples())
    task = dataclasses.replace(task, examples=examples, pair_columns=text_columns if pair else None)
    return clean, task, {name: part.assign(label=task.ids(part["label"])) for name, part in splits.items()}, counts
