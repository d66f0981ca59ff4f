"""The paired bootstrap interval of a difference in the task's F1: its point is scikit-learn's
difference, its interval agrees with a slow resampling loop, identical answers give a zero-width
interval, and the words say better, worse or not distinguishable."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from steps.core import compare
from steps.core.task import Task

SPAM = Task(("ham", "spam"), "spam")
THREE = Task(("a", "b", "c"))
TAGS = Task(("x", "y", "z"), multi_label=True)


def answers(task: Task, n: int, seed: int = 0):
    """Labels, and two models' answers right on about 85 % and 75 % of the rows, the errors drawn at random."""
    rng = np.random.default_rng(seed)
    if task.multi_label:
        labels = (rng.random((n, 3)) < 0.3).astype(int)
        flip = lambda rate: np.where(rng.random(labels.shape) < rate, 1 - labels, labels)  # noqa: E731
    else:
        labels = rng.choice(len(task.labels), size=n, p=[0.7, 0.3] if task.is_binary else None)
        flip = lambda rate: np.where(rng.random(n) < rate, (labels + 1) % len(task.labels), labels)  # noqa: E731
    return labels, flip(0.15), flip(0.25)


def sklearn_f1(task: Task, labels, predicted) -> float:
    if task.is_binary:
        return f1_score(labels, predicted, pos_label=task.positive_id, zero_division=0)
    return f1_score(labels, predicted, average="macro", labels=None if task.multi_label else
                    list(range(len(task.labels))), zero_division=0)


@pytest.mark.slow  # 12,000 calls of scikit-learn's f1_score
@pytest.mark.parametrize("task", [SPAM, THREE, TAGS], ids=["binary", "three classes", "tags"])
def test_the_interval_agrees_with_a_slow_resampling_loop(task):
    labels, better, worse = answers(task, 150)
    difference = compare.paired_difference(task, labels, better, worse)
    assert difference.delta == pytest.approx(sklearn_f1(task, labels, better) - sklearn_f1(task, labels, worse))

    rng = np.random.default_rng(1)
    deltas = []
    for _ in range(2000):  # the reference: resample the rows, score both on them with scikit-learn
        rows = rng.integers(0, len(labels), len(labels))
        deltas.append(sklearn_f1(task, labels[rows], better[rows]) - sklearn_f1(task, labels[rows], worse[rows]))
    low, high = np.percentile(deltas, [2.5, 97.5])
    assert difference.low == pytest.approx(low, abs=0.015) and difference.high == pytest.approx(high, abs=0.015)
    assert difference.low < difference.delta < difference.high


def test_identical_answers_differ_by_nothing_and_the_words_say_how_sure():
    labels, better, worse = answers(SPAM, 300)
    assert compare.paired_difference(SPAM, labels, better, better) == compare.Difference(0.0, 0.0, 0.0)
    clear = compare.paired_difference(SPAM, labels, better, worse)
    assert clear.low > 0 and clear.said("spam F1", "TF-IDF").endswith(": better")
    assert compare.paired_difference(SPAM, labels, worse, better).said("spam F1", "the champion").endswith(": worse")
    assert compare.Difference(0.010, -0.004, 0.025).said("spam F1", "TF-IDF") == \
        "spam F1 +0.010 over TF-IDF (95% interval -0.004 to +0.025): not distinguishable"
    assert clear.metrics("baseline_") == {"baseline_delta": clear.delta, "baseline_delta_low": clear.low,
                                          "baseline_delta_high": clear.high}
    assert compare.paired_difference(SPAM, labels, better, worse) == clear  # seeded: the same interval again
