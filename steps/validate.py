"""validate: score a registered version on the held-out test split and gate its promotion.

Inputs:  model_uri (models:/<name>/<version> or models:/<name>@<alias>), test_data (URI of
         prepare's test.parquet), train_data (its train.parquet, for the baseline; default: the
         one beside test_data), min_accuracy, min_f1 (spam class), checks (a file of messages
         with their expected label and capability; default: steps/checks/behaviour.csv),
         min_check_pass_rate, min_margin_over_baseline.
Logs:    test_accuracy, test_precision, test_recall, test_f1, test_roc_auc; the same with the
         prefix baseline_ for a TF-IDF + linear SVM fitted on train_data; champion_f1 when there
         is a champion; checks_pass_rate overall and checks_pass_rate_<capability>;
         confusion_matrix.png; misclassified.json and behaviour_checks.json tables.
Gate:    the checks' pass rate reaches min_check_pass_rate, the thresholds hold, the spam F1 is at
         least the baseline's plus min_margin_over_baseline, and no worse than the current
         `champion` on the same split: then alias `champion` moves to this version. Otherwise the
         version is tagged rejected with the reason, `champion` stays, and the step fails.
Output:  models:/<name>/<version>
"""

import click
import matplotlib
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.metrics import ConfusionMatrixDisplay

from steps.shared import baseline, data, gate, tracking
from steps.shared.scoring import load_model, predict, registered_version
from steps.shared.errors import PipelineError
from steps.shared.metrics import classification_metrics

matplotlib.use("Agg")  # no display on servers

CHAMPION_ALIAS = "champion"


def confusion_figure(labels, predicted):
    display = ConfusionMatrixDisplay.from_predictions(labels, predicted, labels=list(data.LABELS.values()),
                                                      display_labels=list(data.LABELS), cmap="Blues")
    display.ax_.set_title("Test split")
    return display.figure_


def current_champion(client, name: str, version: str) -> str | None:
    try:
        champion = str(client.get_model_version_by_alias(name, CHAMPION_ALIAS).version)
    except MlflowException:
        return None
    return None if champion == str(version) else champion


@click.command(help=__doc__)
@click.option("--model-uri", required=True)
@click.option("--test-data", required=True, help="URI of prepare's test.parquet.")
@click.option("--train-data", default="", help="URI of prepare's train.parquet (the baseline's training data); "
                                               "empty: the train.parquet beside test_data.")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), default=0.95, show_default=True)
@click.option("--min-f1", type=click.FloatRange(0, 1), default=0.85, show_default=True)
@click.option("--checks", default="", help="CSV/JSON/Parquet of text, expected label and capability; "
                                           "empty: steps/checks/behaviour.csv.")
@click.option("--min-check-pass-rate", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Share of the behaviour checks a version must pass; 1: every one.")
@click.option("--min-margin-over-baseline", type=click.FloatRange(-1, 1), default=0.0, show_default=True,
              help="Spam F1 a version needs above the TF-IDF + linear SVM baseline's; negative: allowed below it.")
def main(model_uri, test_data, train_data, min_accuracy, min_f1, checks, min_check_pass_rate,
         min_margin_over_baseline):
    with tracking.step_run():
        client = MlflowClient()
        name, version = registered_version(client, model_uri)
        test = pd.read_parquet(tracking.download(test_data, "the test split"))
        train = pd.read_parquet(tracking.download(train_data or f"{test_data.rsplit('/', 1)[0]}/train.parquet",
                                                  "the train split"))
        check_set = gate.read_checks(checks or gate.DEFAULT_CHECKS)
        model = load_model(f"models:/{name}/{version}")

        predicted, spam_probability = predict(model.predict, test["text"])
        scores = classification_metrics(test["label"], predicted, spam_probability)
        mlflow.log_metrics({f"test_{key}": value for key, value in scores.items()})
        mlflow.log_figure(confusion_figure(test["label"], predicted), "confusion_matrix.png")
        mlflow.log_table(test.assign(predicted=predicted, spam_probability=spam_probability)
                         [predicted != test["label"].to_numpy()], "misclassified.json")
        baseline_scores = baseline.baseline_scores(train, test)
        mlflow.log_metrics({f"baseline_{key}": value for key, value in baseline_scores.items()})
        check_results = gate.check_results(check_set, *predict(model.predict, check_set["text"]))
        rates = gate.pass_rates(check_results)
        mlflow.log_metrics(rates)
        mlflow.log_table(check_results, "behaviour_checks.json")

        champion = current_champion(client, name, version)
        champion_f1 = None
        if champion:
            champion_predicted, _ = predict(load_model(f"models:/{name}/{champion}").predict, test["text"])
            champion_f1 = classification_metrics(test["label"], champion_predicted)["f1"]
            mlflow.log_metric("champion_f1", champion_f1)
        click.echo(f"version {version}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
                   + f"; checks passed {int(check_results['passed'].sum())}/{len(check_results)} ("
                   + ", ".join(f"{key[len('checks_pass_rate_'):]} {value:.0%}" for key, value in rates.items()
                               if key != "checks_pass_rate") + ")"
                   + f"; baseline F1 {baseline_scores['f1']:.4f}"
                   + (f"; champion version {champion} F1 {champion_f1:.4f}" if champion else "; no champion yet"))

        reason = gate.rejection_reason(scores, check_results, min_accuracy=min_accuracy, min_f1=min_f1,
                                       min_check_pass_rate=min_check_pass_rate, baseline_f1=baseline_scores["f1"],
                                       min_margin_over_baseline=min_margin_over_baseline, champion_f1=champion_f1,
                                       champion_version=champion)
        if reason:
            client.set_model_version_tag(name, version, "validation_status", "rejected")
            client.set_model_version_tag(name, version, "rejection_reason", reason[:5000])
            raise PipelineError(f"{name} version {version} not promoted: {reason}; "
                                + (f"champion stays at version {champion}" if champion else "no champion set"))
        client.set_model_version_tag(name, version, "validation_status", "passed")
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        click.echo(f"{name} version {version} is now @{CHAMPION_ALIAS}")
        tracking.set_output(f"models:/{name}/{version}")


if __name__ == "__main__":
    main()
