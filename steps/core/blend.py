"""The served model's second reader and how much to trust it: a lexical model (the baseline's
TF-IDF word and character n-grams, with logistic regression for probabilities) fitted on the
train split, blended with the fine-tuned encoder as `weight * lexical + (1 - weight) * encoder`,
the weight picked on the validation split. Neither reader always wins (LexGLUE, Chalkidis et al.
2022: TF-IDF beats BERT on SCOTUS and loses on ECtHR), so the data decides; a weight of 0 serves
the encoder alone. Pure functions."""

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline

from steps.core.baseline import features, joined_texts
from steps.core.metrics import classification_metrics, tuned_thresholds
from steps.core.task import Task, metric_key
from steps.served.text_classifier import blended

WEIGHTS = tuple(round(0.1 * step, 1) for step in range(11))  # the lexical model's share, 0 and 1 included
C = 10.0  # weak regularisation: the n-gram features are many and sparse (as measured in issue 32's runs)


def fit_lexical(texts, targets) -> Pipeline:
    """The lexical model on the train split: `targets` are label ids, or an n x tags matrix of 0/1
    (one logistic regression a tag)."""
    targets = np.asarray(targets)
    regression = LogisticRegression(C=C, max_iter=1000)
    return make_pipeline(features(), OneVsRestClassifier(regression) if targets.ndim == 2 else regression).fit(
        list(texts), targets)


@dataclass(frozen=True)
class Choice:
    """The blend train picked: the lexical model's weight, the validation F1 (the task's) of the
    encoder, the lexical model and the blend, and a multi-label task's thresholds tuned on the blend."""
    weight: float
    encoder_f1: float
    lexical_f1: float
    blend_f1: float
    thresholds: tuple[float, ...] | None = None

    def metrics(self) -> dict[str, float]:
        """As train logs it."""
        return {"blend_weight": self.weight, "validation_f1_encoder": self.encoder_f1,
                "validation_f1_lexical": self.lexical_f1, "validation_f1_blend": self.blend_f1}

    @classmethod
    def from_metrics(cls, metrics: dict) -> "Choice":
        return cls(metrics["blend_weight"], metrics["validation_f1_encoder"], metrics["validation_f1_lexical"],
                   metrics["validation_f1_blend"])

    def described(self, f1_name: str) -> str:
        """What is served, in one line."""
        if self.weight == 0:
            return (f"the encoder alone: the lexical model adds nothing on validation ({f1_name} "
                    f"{self.encoder_f1:.4f}, TF-IDF {self.lexical_f1:.4f})")
        if self.weight == 1:
            return (f"the TF-IDF model alone: the encoder adds nothing here ({f1_name} on validation "
                    f"{self.lexical_f1:.4f}, the encoder {self.encoder_f1:.4f})")
        return (f"{self.weight:g} x TF-IDF + {1 - self.weight:g} x encoder: {f1_name} on validation "
                f"{self.blend_f1:.4f}, the encoder alone {self.encoder_f1:.4f} ({self.blend_f1 - self.encoder_f1:+.4f}), "
                f"TF-IDF alone {self.lexical_f1:.4f} ({self.blend_f1 - self.lexical_f1:+.4f})")


def scored(task: Task, labels, probabilities, tune: bool) -> tuple[float, float, tuple[float, ...] | None]:
    """Validation F1 (the task's) of one set of probabilities, their log loss (a tag's binary ones
    averaged), and the tags' thresholds when tuned."""
    labels = np.asarray(labels)
    thresholds = tuned_thresholds(labels, probabilities) if tune else None
    f1 = classification_metrics(task, labels, replace(task, thresholds=thresholds).decide(probabilities))["f1"]
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    loss = (log_loss(labels.ravel(), clipped.ravel(), labels=[0, 1]) if task.multi_label
            else log_loss(labels, clipped, labels=list(range(len(task.labels)))))
    return f1, loss, thresholds


def choose_weight(task: Task, labels, encoder, lexical, tune_thresholds: bool = False,
                  weights=WEIGHTS) -> Choice:
    """The weight of the grid (which holds 0 and 1: each reader alone) with the lowest validation
    log loss; of equal ones, the higher F1. Log loss, not F1: every text's probability counts, where
    F1 moves by whole texts of a rare class. On SMS (65 spam validation texts) F1 picked 0.6 on a
    one-text lead and the blend then failed 5 of 44 behaviour checks; log loss picked 0.4, where the
    test split's log loss is lowest too (docs/blend.md). One weight for all of a multi-label task's
    tags: a weight a tag would be picked on its few positive validation texts."""
    trials = [(weight, *scored(task, labels, blended(encoder, lexical, weight), tune_thresholds))
              for weight in weights]
    weight, f1, _, thresholds = min(trials, key=lambda trial: (round(trial[2], 10), -trial[1]))
    f1s = {trial[0]: trial[1] for trial in trials}
    return Choice(weight, f1s[0.0], f1s[1.0], f1, thresholds)


def fit_blend(task: Task, train, validation, encoder, tune_thresholds: bool = False) -> tuple[Pipeline, Choice,
                                                                                        np.ndarray]:
    """The lexical model fitted on the `train` split, and the blend picked on the `validation` split
    (prepare's frames) given the encoder's probabilities of its texts, in the split's order; and the
    lexical model's validation probabilities."""
    lexical = fit_lexical(joined_texts(train), task.targets(train["label"]))
    probabilities = lexical.predict_proba(joined_texts(validation))
    return (lexical, choose_weight(task, task.targets(validation["label"]), encoder, probabilities, tune_thresholds),
            probabilities)


def probability_table(task: Task, labels, **readers) -> pd.DataFrame:
    """Each text's label (ids, or a row of 0/1 a tag) and each reader's probabilities, a column a
    reader and label (`encoder_spam`, `lexical_spam`): what a blend is picked from, kept."""
    return pd.DataFrame({"label": np.asarray(labels).tolist(),
                         **{f"{reader}_{metric_key(label)}": np.asarray(probabilities)[:, i]
                            for reader, probabilities in readers.items() for i, label in enumerate(task.labels)}})
