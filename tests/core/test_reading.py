"""How a text is read into the model (steps/served/text_classifier.py, steps/core/reading.py):
the windows each long_text strategy makes, any text answered with at least one window, a text's
windows pooled, validation scored per text, and a stride that cannot move forward refused."""

from types import SimpleNamespace

import numpy as np
import pytest
from transformers import AutoTokenizer

from steps.core import tokens
from steps.core.errors import PipelineError
from steps.core.metrics import trainer_metrics
from steps.core.reading import Reading
from steps.core.task import Task
from steps.served import text_classifier
from tests.helpers import ODD_TEXTS, assert_one_line



@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    return AutoTokenizer.from_pretrained(str(tiny_model))


@pytest.fixture(scope="module")
def words(tokenizer) -> list[str]:
    """40 distinct words of the tokenizer's vocabulary, each one token: where a cut falls shows."""
    whole = sorted(t for t in tokenizer.get_vocab() if t.isalpha() and len(t) > 2 and not t.startswith("["))
    return whole[:40]


def decoded(tokenizer, ids) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


def test_head_reads_the_first_tokens(tokenizer, words):
    inputs, documents = text_classifier.encode(tokenizer, [" ".join(words)], 12, "head")
    assert decoded(tokenizer, inputs["input_ids"][0])[1:-1] == words[:10] and documents == [0]


def test_head_tail_reads_the_first_quarter_and_the_last_three_quarters(tokenizer, words):
    inputs, _ = text_classifier.encode(tokenizer, [" ".join(words), words[0]], 22, "head_tail")
    tokens = decoded(tokenizer, inputs["input_ids"][0])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and len(tokens) == 22
    assert tokens[1:-1] == words[:5] + words[25:]  # 5 + 15 of 20
    assert decoded(tokenizer, inputs["input_ids"][1]) == ["[CLS]", words[0], "[SEP]"]  # a short text whole
    assert {len(row) for row in inputs["attention_mask"]} == {22, 3}


def test_chunks_cover_the_whole_text_in_overlapping_windows(tokenizer, words):
    inputs, documents = text_classifier.encode(tokenizer, [words[0], " ".join(words)], 12, "chunks", stride=4)
    windows = [decoded(tokenizer, ids)[1:-1] for ids in inputs["input_ids"]]
    assert documents == [0, 1, 1, 1, 1, 1, 1] and windows[0] == [words[0]]  # 40 tokens: 10 + 5 x 6 new
    assert windows[1] == words[:10] and windows[2] == words[6:16]  # each shares 4 tokens with the one before
    assert [t for window in windows[1:] for t in window[4:]] == words[4:]  # nothing left out, nothing twice


def test_head_of_a_pair_cuts_the_longer_text_first(tokenizer, words):
    inputs, _ = text_classifier.encode(tokenizer, [" ".join(words[:4])], 13, "head", pairs=[" ".join(words[4:])])
    tokens = decoded(tokenizer, inputs["input_ids"][0])
    assert tokens == ["[CLS]", *words[:4], "[SEP]", *words[4:10], "[SEP]"]  # the short first text whole
    assert inputs["token_type_ids"][0] == [0] * 6 + [1] * 7


def test_chunks_of_a_pair_window_the_second_text_and_repeat_the_first(tokenizer, words):
    """16 positions, 3 specials: the first text keeps at most 6 tokens, the second's windows 7 (stride 2)."""
    inputs, documents = text_classifier.encode(tokenizer, [" ".join(words[:10]), words[0]], 16, "chunks", stride=2,
                                               pairs=[" ".join(words[10:30]), ""])
    windows = [decoded(tokenizer, ids) for ids in inputs["input_ids"]]
    assert set(documents) == {0, 1} and documents[-1] == 1
    first = [window[1:window.index("[SEP]")] for window in windows[:-1]]
    assert all(part == words[:6] for part in first)  # cut to half the room, at a token's end
    seconds = [window[window.index("[SEP]") + 1:-1] for window in windows[:-1]]
    assert [t for part in seconds[:1] for t in part] + [t for part in seconds[1:] for t in part[2:]] == words[10:30]
    assert windows[-1] == ["[CLS]", words[0], "[SEP]", "[SEP]"]  # an empty second text still gets its window


def test_head_tail_of_a_pair_is_refused(tokenizer):
    with pytest.raises(PipelineError, match="^long_text=head_tail reads single texts: set long_text to head or chunks"):
        Reading(long_text="head_tail").check(tokenizer.num_special_tokens_to_add(pair=True), pair=True)
    with pytest.raises(ValueError, match="head_tail reads single texts"):
        text_classifier.encode(tokenizer, ["a"], 16, "head_tail", pairs=["b"])


@pytest.mark.parametrize("long_text", text_classifier.LONG_TEXT)
def test_every_text_gets_a_window_within_the_length(tokenizer, long_text):
    inputs, documents = text_classifier.encode(tokenizer, ODD_TEXTS, 16, long_text, stride=4)
    assert set(documents) == set(range(len(ODD_TEXTS)))
    assert max(len(ids) for ids in inputs["input_ids"]) == 16


def test_a_texts_answer_is_the_mean_of_its_windows():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    np.testing.assert_allclose(text_classifier.pool(probabilities, [0, 1, 1, 2], 3),
                               [[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]])


def test_validation_with_chunks_scores_texts_not_windows():
    """Text 1 has three windows, one wrong: per window accuracy 3/4, per text (pooled) 2/2."""
    task = Task(("ham", "spam"), "spam")
    logits = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]]))
    prediction = SimpleNamespace(predictions=logits, label_ids=np.array([0, 1, 1, 1]))
    assert trainer_metrics(task)(prediction)["accuracy"] == 0.75
    assert trainer_metrics(task, [0, 1, 1, 1])(prediction)["accuracy"] == 1.0


def test_a_stride_that_leaves_no_new_tokens_is_a_one_line_error(tokenizer):
    reading = Reading(max_length=16, long_text="chunks", stride=14)
    with pytest.raises(PipelineError, match=r"stride=14 is not smaller than the 14 text tokens .* lower stride") as error:
        reading.check(tokenizer.num_special_tokens_to_add())
    assert_one_line(str(error.value))
    Reading(max_length=16, long_text="head", stride=14).check(2)  # only chunks moves by the stride
    with pytest.raises(PipelineError, match=r"stride=7 is not smaller than the 7 text tokens"):  # a pair's second
        Reading(max_length=16, long_text="chunks", stride=7).check(3, pair=True)  # text has 13 - 13 // 2


def test_pairs_of_odd_texts_each_get_a_window(tokenizer):
    for long_text in ("head", "chunks"):
        inputs, documents = text_classifier.encode(tokenizer, ODD_TEXTS, 16, long_text, 4, pairs=ODD_TEXTS[::-1])
        assert set(documents) == set(range(len(ODD_TEXTS))) and max(map(len, inputs["input_ids"])) == 16


def test_tokenize_says_when_most_texts_are_cut():
    stats = {"fraction_truncated": 0.87, "token_length_median": 420}
    assert tokens.cut_warning(stats, Reading()) == ("87% of texts are cut at 128 tokens (long_text=head; median "
                                                      "420 tokens): see long_text to read them whole")
    assert tokens.cut_warning(stats, Reading(long_text="chunks")) is None
    assert tokens.cut_warning({**stats, "fraction_truncated": 0.2}, Reading()) is None
