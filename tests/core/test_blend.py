"""The blend of the encoder with the lexical model: the lexical model's probabilities for one
label, many, or tags; the weight validation picks (each reader alone where the other adds nothing,
between them where each is right where the other is wrong, by validation log loss, not F1's whole texts); tags'
thresholds tuned on the blend; both readers' validation probabilities kept."""

import numpy as np
import pandas as pd
import pytest

from steps.core import blend
from steps.core.task import Task
from steps.served.text_classifier import blended
from tests.helpers import messages, tagged_tickets, tickets

SPAM = Task(("ham", "spam"), "spam")


def frame(rows):
    return pd.DataFrame({"text": [text for _, text in rows], "label": [label for label, _ in rows]})


def test_the_lexical_model_answers_probabilities_for_classes_and_for_tags():
    sms = frame(messages())
    binary = blend.fit_lexical(sms["text"], SPAM.ids(sms["label"]))
    probabilities = binary.predict_proba(["WINNER! Claim your free cash prize now", "see you at lunch tomorrow"])
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1)
    assert probabilities[0, 1] > 0.5 > probabilities[1, 1]  # spam, then ham

    kinds = frame(tickets())
    task = Task(tuple(sorted(kinds["label"].unique())))
    three = blend.fit_lexical(kinds["text"], task.ids(kinds["label"]))
    assert three.predict_proba(kinds["text"][:5]).shape == (5, 3)

    tags = Task(("billing", "bug", "praise"), multi_label=True)  # separated by "|", the default
    rows = tagged_tickets()
    targets = tags.targets(tags.ids(pd.Series([labels for labels, _ in rows])))
    per_tag = blend.fit_lexical([text for _, text in rows], targets).predict_proba([text for _, text in rows])
    assert per_tag.shape == targets.shape and ((per_tag >= 0) & (per_tag <= 1)).all()
    assert not np.allclose(per_tag.sum(axis=1), 1)  # each tag its own probability, not a softmax


def two_readers(n: int = 40):
    """Binary labels half spam; the encoder sure and right on the first half and barely wrong on the
    second, the lexical model the other way round: each alone misses half, the mean misses none."""
    labels = np.array([0, 1] * (n // 2))
    right = np.eye(2)[labels]
    barely_wrong = np.where(right == 1, 0.45, 0.55)
    sure = np.where(right == 1, 0.95, 0.05)
    first = np.arange(n) < n // 2
    encoder = np.where(first[:, None], sure, barely_wrong)
    lexical = np.where(first[:, None], barely_wrong, sure)
    return labels, encoder, lexical


def test_a_blend_of_two_readers_each_right_where_the_other_is_wrong_beats_both():
    labels, encoder, lexical = two_readers()
    choice = blend.choose_weight(SPAM, labels, encoder, lexical)
    assert 0 < choice.weight < 1 and choice.blend_f1 == 1.0
    assert choice.encoder_f1 < 1 and choice.lexical_f1 < 1
    assert "x TF-IDF +" in choice.described(SPAM.f1_name)


def test_each_reader_alone_where_the_other_adds_nothing():
    labels, encoder, _ = two_readers()
    noise = np.random.default_rng(0).dirichlet([1, 1], size=len(labels))
    perfect = np.eye(2)[labels] * 0.9 + 0.05
    assert blend.choose_weight(SPAM, labels, perfect, noise).weight == 0.0
    only_lexical = blend.choose_weight(SPAM, labels, noise, perfect)
    assert only_lexical.weight == 1.0 and "the encoder adds nothing" in only_lexical.described(SPAM.f1_name)
    assert "the encoder alone" in blend.choose_weight(SPAM, labels, perfect, noise).described(SPAM.f1_name)


def test_the_weight_is_the_one_with_the_lowest_validation_log_loss_where_f1_cannot_tell():
    labels = np.array([0, 1] * 10)
    sure = np.eye(2)[labels] * 0.98 + 0.01
    unsure = np.eye(2)[labels] * 0.2 + 0.4  # right, at 0.6
    choice = blend.choose_weight(SPAM, labels, unsure, sure)
    assert choice.encoder_f1 == choice.lexical_f1 == choice.blend_f1 == 1.0
    assert choice.weight == 1.0  # every weight is right on every text: the surest has the lowest log loss
    assert blend.choose_weight(SPAM, labels, sure, unsure).weight == 0.0


def test_log_loss_picks_the_weight_where_f1_would_pick_another():
    """A sure lexical model wrong on one ham, an unsure encoder wrong on one spam: a little lexical
    weight answers every text right (F1's pick), while the lexical model's sureness elsewhere gives
    more weight the lowest log loss (the pick)."""
    labels = np.array([0] * 16 + [1] * 4)
    encoder = np.where(np.eye(2)[labels] == 1, 0.8, 0.2)
    encoder[-1] = [0.55, 0.45]
    lexical = np.where(np.eye(2)[labels] == 1, 0.9, 0.1)
    lexical[0] = [0.01, 0.99]
    trials = {a: blend.scored(SPAM, labels, blended(encoder, lexical, a), False) for a in blend.WEIGHTS}
    choice = blend.choose_weight(SPAM, labels, encoder, lexical)
    assert choice.weight == min(trials, key=lambda a: trials[a][1])
    assert choice.weight != max(trials, key=lambda a: trials[a][0])
    assert choice.blend_f1 == trials[choice.weight][0]


def test_tags_thresholds_are_tuned_on_the_blended_probabilities():
    tags = Task(("a", "b"), multi_label=True)
    labels = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 5)
    low = labels * 0.3 + 0.1  # right when cut at 0.25, never at 0.5
    choice = blend.choose_weight(tags, labels, low, low, tune_thresholds=True)
    assert len(choice.thresholds) == 2 and all(cut <= 0.4 for cut in choice.thresholds)
    assert choice.blend_f1 == 1.0
    untuned = blend.choose_weight(tags, labels, low, low)
    assert untuned.thresholds is None and untuned.blend_f1 == 0.0


def test_fit_blend_picks_on_the_validation_split_and_keeps_both_readers_probabilities():
    sms = frame(messages()).assign(label=lambda f: SPAM.ids(f["label"]))
    train, validation = sms.iloc[::2].reset_index(drop=True), sms.iloc[1::2].reset_index(drop=True)
    encoder = np.full((len(validation), 2), 0.5)  # an encoder that learned nothing
    lexical, choice, probabilities = blend.fit_blend(SPAM, train, validation, encoder)
    assert choice.weight > 0.5 and choice.blend_f1 > choice.encoder_f1
    assert np.allclose(lexical.predict_proba(list(validation["text"])), probabilities)
    table = blend.probability_table(SPAM, validation["label"], encoder=encoder, lexical=probabilities)
    assert list(table.columns) == ["label", "encoder_ham", "encoder_spam", "lexical_ham", "lexical_spam"]
    assert np.allclose(table[["lexical_ham", "lexical_spam"]], probabilities)
    assert table["label"].tolist() == validation["label"].tolist()
