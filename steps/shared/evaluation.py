"""Scores on the test split through MLflow's classifier evaluator (`mlflow.models.evaluate`).

The evaluator scores predictions given as a column (no model call: the project's own batched
scoring made them). It logs its standard metrics with a prefix (`test_f1_score`,
`test_true_positives`, ...) and its confusion matrix (`<prefix>confusion_matrix.png`) into the
active run. It draws ROC and precision-recall curves only from the `predict_proba` of a raw
scikit-learn or XGBoost model, so ROC AUC from p(spam) is an extra metric here. The project's
shorter names (`test_f1`, ...) are logged beside MLflow's so that older runs stay comparable.
"""

import mlflow
import pandas as pd
from mlflow.metrics import MetricValue
from mlflow.models import make_metric
from sklearn.metrics import roc_auc_score

from steps.shared import data

# the project's metric name -> the evaluator's
PROJECT_NAMES = {"accuracy": "accuracy_score", "precision": "precision_score", "recall": "recall_score",
                 "f1": "f1_score", "roc_auc": "roc_auc"}
LABEL_NAMES = list(data.LABELS)  # ids 0, 1 -> ham, spam


def roc_auc(predictions, targets, spam_score) -> MetricValue:
    """MLflow passes arguments by parameter name (`spam_score` is a column of the data); with two
    parameters it would pass its own (eval_df, metrics) instead, so `predictions` stays, unused."""
    is_spam = (targets == data.POSITIVE_LABEL).to_numpy()
    # None with one class only, as in the evaluator's trial on the first row: not logged, no warning
    value = float(roc_auc_score(is_spam, spam_score)) if len(set(is_spam)) == 2 else None
    return MetricValue(aggregate_results={"roc_auc": value})


ROC_AUC = make_metric(eval_fn=roc_auc, greater_is_better=True, name="roc_auc")


def evaluate(texts, labels, predicted, spam_score, prefix: str) -> dict[str, float]:
    """Evaluate label ids `predicted` (and a spam score that ranks messages) against `labels` into
    the active run, metric names prefixed; the project's metrics by their short names."""
    frame = pd.DataFrame({"text": list(texts), "label": [LABEL_NAMES[i] for i in labels],
                          "predicted": [LABEL_NAMES[i] for i in predicted], "spam_score": spam_score})
    result = mlflow.models.evaluate(
        data=frame, targets="label", predictions="predicted", model_type="classifier", extra_metrics=[ROC_AUC],
        evaluator_config={"metric_prefix": prefix, "pos_label": data.POSITIVE_LABEL, "label_list": LABEL_NAMES,
                          "log_model_explainability": False})  # SHAP needs a model, and numeric labels
    scores = {short: float(result.metrics[prefix + name]) for short, name in PROJECT_NAMES.items()
              if prefix + name in result.metrics}
    mlflow.log_metrics({prefix + short: value for short, value in scores.items() if short != PROJECT_NAMES[short]})
    return scores
