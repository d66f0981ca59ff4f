"""The baseline a fine-tuned version must beat: TF-IDF word and character n-grams with a
linear SVM (scikit-learn, one-vs-rest for more than two classes, and one SVM a tag for a
multi-label task), fitted in seconds on prepare's train split. Pure functions."""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline, make_union
from sklearn.svm import LinearSVC

from steps.core.task import Task
from steps.served import text_classifier

NAME = "TF-IDF + linear SVM"


def features() -> FeatureUnion:
    """Words and word pairs, plus character 2- to 5-grams (which catch `£1000`, `txt`, `c1ick`)."""
    return make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                      TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))


def fit_baseline(texts, labels) -> Pipeline:
    """`labels`: ids, or an n x tags matrix of 0/1 (one SVM a tag)."""
    labels = np.asarray(labels)
    model = make_pipeline(features(), OneVsRestClassifier(LinearSVC()) if labels.ndim == 2 else LinearSVC())
    return model.fit(list(texts), labels)


def joined_texts(split) -> list[str]:
    """A split's texts as the lexical models read them (a pair's two joined: they read words, not pairs)."""
    return text_classifier.joined_texts(split["text"], split["text_pair"] if "text_pair" in split else None)


def baseline_predictions(train, test, task: Task) -> tuple:
    """Fitted on `train`: the test texts' answers (label ids, or rows of 0/1 a tag: a positive
    margin), and scores that rank them for ROC AUC (the SVM's margins through a softmax, a binary
    SVM's one margin m as the pair -m, m; a tag's margin through a sigmoid)."""
    model = fit_baseline(joined_texts(train), task.targets(train["label"]))
    texts = joined_texts(test)
    margins = model.decision_function(texts)
    if margins.ndim == 1:
        margins = np.stack([-margins, margins], axis=1)
    return model.predict(texts), text_classifier.activate(margins, task.multi_label)
