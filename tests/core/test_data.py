"""The pure data functions of `prepare`: formats, columns, cleaning, splitting."""

import json

import pandas as pd
import pytest

from steps.core import data
from steps.core.errors import PipelineError
from tests.helpers import assert_one_line

ROWS = [("ham", "see you at lunch"), ("spam", 'WIN a "free" prize now'), ("ham", "call me later")]


def frame(rows=ROWS, text="text", label="label"):
    return pd.DataFrame({label: [r[0] for r in rows], text: [r[1] for r in rows]})


def test_reads_uci_file_with_quotes_untouched(tmp_path):
    path = tmp_path / "SMSSpamCollection"
    path.write_text("".join(f"{label}\t{text}\n" for label, text in ROWS))
    table = data.read_table(path)
    assert table.to_dict("records") == [{"label": l, "text": t} for l, t in ROWS]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl", ".parquet"])
def test_reads_every_table_format(tmp_path, suffix):
    path = tmp_path / f"sms{suffix}"
    table = frame(text="sms")
    if suffix == ".csv":
        table.to_csv(path, index=False)
    elif suffix == ".json":
        path.write_text(json.dumps(table.to_dict("records")))
    elif suffix == ".jsonl":
        table.to_json(path, orient="records", lines=True)
    else:
        table.to_parquet(path)
    normalised, columns = data.normalise(data.read_table(path))
    assert columns == ("sms",)
    assert normalised["text"].tolist() == [t for _, t in ROWS]
    assert normalised["label"].tolist() == ["ham", "spam", "ham"]


def test_reads_latin1_csv_with_kaggle_columns(tmp_path):
    path = tmp_path / "spam.csv"
    path.write_bytes("v1,v2\nham,caf\xe9 at 5?\nspam,WIN now\n".encode("latin-1"))
    normalised, columns = data.normalise(data.read_table(path))
    assert columns == ("v2",)
    assert normalised.to_dict("records") == [{"text": "café at 5?", "label": "ham"},
                                                {"text": "WIN now", "label": "spam"}]


def test_reads_a_folder_of_files_and_skips_its_readme(tmp_path):
    frame(ROWS[:2]).to_csv(tmp_path / "a.csv", index=False)
    frame(ROWS[2:]).to_csv(tmp_path / "b.csv", index=False)
    (tmp_path / "README.md").write_text("# not data\n")
    assert data.read_table(tmp_path)["text"].tolist() == [t for _, t in ROWS]


def test_missing_file_says_which_and_what_to_pass(tmp_path):
    with pytest.raises(PipelineError, match=r"does not exist: pass an existing file"):
        data.read_table(tmp_path / "nope.csv")


def test_explicit_columns_win_over_known_names():
    table = frame().assign(message=["x", "y", "z"])
    assert data.find_text_columns(table.columns, text_column="message") == ("message",)
    assert data.find_text_columns(table.columns) == ("text",)
    assert data.find_text_columns(table.columns, text_column="message, text") == ("message", "text")


def test_missing_columns_name_the_columns_and_the_option():
    with pytest.raises(PipelineError, match=r"no text column found \(columns: label, words\).*text_column"):
        data.find_text_columns(["label", "words"])
    with pytest.raises(PipelineError, match=r"text column 'body' not found \(columns: subject, label\).*text_column"):
        data.find_text_columns(["subject", "label"], "subject,body")
    with pytest.raises(PipelineError, match=r"label column 'kind' not found.*label_column"):
        data.normalise(frame(), label_column="kind")


def test_two_text_columns_make_a_pair():
    table = pd.DataFrame({"subject": ["refund", "crash", "refund"], "body": ["money back", "", "money back"],
                          "label": ["billing", "bug", "billing"]})
    pairs, columns = data.normalise(table, "subject,body")
    assert columns == ("subject", "body") and list(pairs.columns) == ["text", "text_pair", "label"]
    clean, counts = data.drop_empty_and_repeated(pairs)
    assert clean[["text", "text_pair"]].values.tolist() == [["refund", "money back"], ["crash", ""]]
    assert counts["duplicates_dropped"] == 1  # a repeat is the same pair; an empty second text is kept


@pytest.mark.parametrize("column, text_column, message", [
    ("body", "subject,body", r"^the pair's second column 'body' is empty in every row: set text_column"),
    ("subject", "subject", r"^column 'subject' holds numbers, not text \(e.g. 1\): set text_column"),
    ("subject", "subject,body,extra", r"^text_column=subject,body,extra names 3 columns: give one, or two"),
])
def test_text_columns_that_cannot_be_read_as_texts_say_what_to_set(column, text_column, message):
    table = pd.DataFrame({"subject": ["refund", "crash"], "body": ["money back", "it froze"], "label": ["a", "b"]})
    bad = table.assign(**{column: [1, 2] if column == "subject" else ["", " "]})
    with pytest.raises(PipelineError, match=message) as error:
        data.normalise(bad, text_column)
    assert_one_line(str(error.value))
    with pytest.raises(PipelineError, match=r"column 'tags' holds lists, not text \(e.g. \['a'\]\)"):
        data.normalise(table.assign(tags=[["a"], ["b"]]), "tags")


def test_empty_and_repeated_texts_are_dropped_and_counted():
    table = pd.DataFrame({"text": ["a", "  ", "b", "a", "", "c", "b"], "label": [0, 0, 1, 0, 1, 0, 1]})
    clean, counts = data.drop_empty_and_repeated(table)
    assert clean["text"].tolist() == ["a", "b", "c"]
    assert counts == {"rows_read": 7, "empty_dropped": 2, "duplicates_dropped": 2, "rows_kept": 3}


def test_all_empty_is_an_error():
    with pytest.raises(PipelineError, match="no non-empty text"):
        data.drop_empty_and_repeated(pd.DataFrame({"text": ["", " "], "label": [0, 1]}))


def balanced(n_ham=160, n_spam=40):
    return pd.DataFrame({"text": [f"message {i}" for i in range(n_ham + n_spam)],
                         "label": ["ham"] * n_ham + ["spam"] * n_spam})


def test_split_is_stratified_disjoint_and_sized():
    splits = data.split_stratified(balanced(), test_size=0.2, validation_size=0.1, seed=22)
    assert {name: len(part) for name, part in splits.items()} == {"train": 140, "validation": 20, "test": 40}
    assert {name: int((part["label"] == "spam").sum()) for name, part in splits.items()} == \
        {"train": 28, "validation": 4, "test": 8}
    texts = [set(part["text"]) for part in splits.values()]
    assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])


def test_split_depends_on_the_seed_only():
    first = data.split_stratified(balanced(), 0.2, 0.1, seed=1)["test"]["text"].tolist()
    assert data.split_stratified(balanced(), 0.2, 0.1, seed=1)["test"]["text"].tolist() == first
    assert data.split_stratified(balanced(), 0.2, 0.1, seed=2)["test"]["text"].tolist() != first


def test_unseen_rows_are_the_test_rows_another_splits_training_did_not_hold():
    # Another seed's train and validation hold most of this split's test texts: only the rest is unseen.
    test = data.split_stratified(balanced(), 0.2, 0.1, seed=1)["test"]
    other = data.split_stratified(balanced(), 0.2, 0.1, seed=2)
    rows = data.unseen(test, pd.concat([other["train"], other["validation"]]))
    assert test["text"][rows].tolist() == [text for text in test["text"] if text in set(other["test"]["text"])]
    assert 0 < rows.sum() < len(test)
    assert data.unseen(test, other["test"].head(0)).all()  # nothing seen


def test_a_pair_is_seen_only_with_both_its_texts():
    test = pd.DataFrame({"text": ["subject a", "subject a", "subject b"], "text_pair": ["body 1", "body 2", "body 1"]})
    seen = pd.DataFrame({"text": ["subject a"], "text_pair": ["body 1"]})
    assert data.unseen(test, seen).tolist() == [False, True, True]


def test_a_class_too_small_to_split_is_named_with_what_it_needs():
    with pytest.raises(PipelineError, match=r"^too few rows of 'spam' 9 to split stratified into train/validation/test "
                                            r"\(sizes 0.7/0.1/0.2 need 10 rows of each class; all classes: "
                                            r"'ham' 100, 'spam' 9\): add rows"):
        data.split_stratified(balanced(100, 9), 0.2, 0.1, seed=0)
    assert len(data.split_stratified(balanced(100, 10), 0.2, 0.1, seed=0)["validation"]) == 11


def test_split_sizes_must_leave_room_for_training():
    with pytest.raises(PipelineError, match="sum is below 1"):
        data.split_stratified(balanced(), 0.6, 0.5, seed=0)


def test_a_hub_data_set_gives_its_class_names_not_their_numbers():
    from datasets import ClassLabel, Dataset, Features, Value

    from steps.plumbing.sources import with_class_names

    table = Dataset.from_dict({"sms": ["hi", "WIN"], "label": [0, 1]},
                              features=Features({"sms": Value("string"), "label": ClassLabel(names=["ham", "spam"])}))
    assert with_class_names(table).to_dict("list") == {"sms": ["hi", "WIN"], "label": ["ham", "spam"]}


def test_a_hub_multi_label_column_gives_each_rows_tag_names():
    from datasets import ClassLabel, Dataset, Features, List, Value

    from steps.plumbing.sources import with_class_names

    table = Dataset.from_dict({"text": ["both", "none"], "labels": [[1, 0], []]}, features=Features(
        {"text": Value("string"), "labels": List(ClassLabel(names=["billing", "bug"]))}))
    assert with_class_names(table)["labels"].tolist() == [["bug", "billing"], []]
