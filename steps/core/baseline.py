"""The baseline a fine-tuned version must beat: TF-IDF word and character n-grams with a
linear SVM (scikit-learn, one-vs-rest for more than two classes), fitted in seconds on prepare's
train split. Pure functions."""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.svm import LinearSVC

from steps.served.text_classifier import softmax

NAME = "TF-IDF + linear SVM"


def fit_baseline(texts, labels) -> Pipeline:
    """Words and word pairs, plus character 2- to 5-grams (which catch `£1000`, `txt`, `c1ick`)."""
    model = make_pipeline(
        make_union(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                   TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
        LinearSVC())
    return model.fit(list(texts), labels)


def joined_texts(split) -> list[str]:
    """A split's texts; a pair's two joined by a line break (the baseline reads words, not pairs)."""
    if "text_pair" in split:
        return list(split["text"] + "\n" + split["text_pair"])
    return list(split["text"])


def baseline_predictions(train, test) -> tuple:
    """Fitted on `train`: label ids for the test texts, and class scores that rank them for ROC
    AUC (the SVM's margins through a softmax: a binary SVM's one margin m as the pair -m, m)."""
    model = fit_baseline(joined_texts(train), train["label"])
    texts = joined_texts(test)
    margins = model.decision_function(texts)
    if margins.ndim == 1:
        margins = np.stack([-margins, margins], axis=1)
    return model.predict(texts), softmax(margins)
