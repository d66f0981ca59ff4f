"""Scoring a registered model: every class's score in the task's order, rows in input order."""


import numpy as np
import pandas as pd
import pytest

from steps.core.errors import PipelineError
from steps.core.task import Task
from steps.plumbing import scoring

SMS = Task(("ham", "spam"), "spam")


def test_scoring_reads_every_class_score_in_the_task_order_and_rows_in_input_order():
    def predict_batch(texts):  # as a pyfunc model loaded with CLASS_SCORES answers: best first
        return pd.DataFrame([[{"label": "spam", "score": 0.8}, {"label": "ham", "score": 0.2}] if len(text) > 1 else
                             [{"label": "ham", "score": 0.9}, {"label": "spam", "score": 0.1}] for text in texts])

    labels, probabilities = scoring.predict(predict_batch, ["bb", "a"], SMS)
    assert labels.tolist() == [1, 0] and np.allclose(probabilities, [[0.2, 0.8], [0.9, 0.1]])
    with pytest.raises(PipelineError, match="the model answers label 'spam', not one of the task's"):
        scoring.predict(predict_batch, ["bb"], Task(("neg", "pos"), "pos"))
