"""Tokenizing prepare's splits (steps/core/tokens.py) and loading a pretrained model (steps/core/hub.py)."""


import pytest
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from steps.core import hub, tokens
from steps.core.errors import PipelineError
from steps.core.reading import Reading
from steps.plumbing import contract

def test_tokenize_truncates_without_padding_and_measures_lengths(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = ["hi", "call me when you get home", "win " * 40]
    splits = DatasetDict({s: Dataset.from_dict({"text": texts, "label": [0, 0, 1]}) for s in contract.SPLITS})
    tokenized, stats = tokens.tokenize_splits(splits, tokenizer, Reading(max_length=16))
    lengths = [len(ids) for ids in tokenized["train"]["input_ids"]]
    assert lengths[0] < lengths[1] < lengths[2] == 16  # unpadded, the long one truncated
    assert tokenized["train"].column_names == ["input_ids", "token_type_ids", "attention_mask", "label", "document"]
    assert tokenized["train"]["document"] == [0, 1, 2] and stats["train_windows"] == 3
    assert stats["token_length_max"] == 42 and stats["fraction_truncated"] == pytest.approx(1 / 3)


def test_token_length_stats():
    assert tokens.token_length_stats([10, 20, 30, 200], max_length=128) == {
        "token_length_median": 25.0, "token_length_p95": pytest.approx(174.5),
        "token_length_max": 200.0, "fraction_truncated": 0.25}


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(PipelineError, match=r"model folder .*/absent does not exist"):
        hub.load_pretrained(AutoTokenizer.from_pretrained, str(tmp_path / "absent"), "model")


def test_hub_id_offline_says_to_pass_a_local_path():
    with pytest.raises(PipelineError, match=r"cannot load tokenizer 'distilbert/distilbert-base-uncased' from the "
                                            r"Hugging Face Hub .*pass a local path instead"):
        tokens.load_tokenizer(hub.DEFAULT_MODEL)


@pytest.mark.parametrize("name, is_path", [("distilbert-base-uncased", False), ("owner/model", False),
                                           ("./model", True), ("/abs/model", True), ("~/model", True),
                                           ("a/b/c", True)])
def test_hub_ids_and_paths_are_told_apart(name, is_path):
    assert hub.looks_like_path(name) is is_path
