"""validate: score a registered version on the held-out test split and gate its promotion.

Inputs:  model_uri (models:/<name>/<version> or models:/<name>@<alias>), test_data (URI of
         prepare's test.parquet), train_data (its train.parquet, for the baseline; default: the
         one beside test_data), min_accuracy, min_f1 (spam class), checks (a file of messages
         with their expected label and capability; default: steps/checks/behaviour.csv),
         min_check_pass_rate, min_margin_over_baseline.
Logs:    through mlflow.models.evaluate, into this run: MLflow's classifier metrics and confusion
         matrix prefixed test_ for the version, baseline_ for a TF-IDF + linear SVM fitted on
         train_data, champion_ for the current champion, each on the same test split; the
         project's names beside them (test_accuracy, test_precision, test_recall, test_f1,
         test_roc_auc, baseline_f1, champion_f1, ...); checks_pass_rate overall and
         checks_pass_rate_<capability>; misclassified.json and behaviour_checks.json tables.
Gate:    MetricThresholds checked by mlflow.validate_evaluation_results: the checks' pass rate
         reaches min_check_pass_rate, the thresholds hold, the spam F1 is at least the baseline's
         plus min_margin_over_baseline, and no worse than the current `champion` on the same split.
         Passed: the version records its test F1 and `champion` moves to the best passed version
         (steps/shared/promotion.py). Otherwise the version is tagged rejected with the reason,
         `champion` stays, and the step fails.
Output:  models:/<name>/<version>
"""

import click
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from steps.shared import baseline, gate, promotion, tracking
from steps.shared.errors import PipelineError
from steps.shared.evaluation import evaluate
from steps.shared.scoring import load_model, predict, registered_version


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
        scores = evaluate(test["text"], test["label"], predicted, spam_probability, "test_")
        mlflow.log_table(test.assign(predicted=predicted, spam_probability=spam_probability)
                         [predicted != test["label"].to_numpy()], "misclassified.json")
        baseline_scores = evaluate(test["text"], test["label"], *baseline.baseline_predictions(train, test),
                                   "baseline_")
        check_results = gate.check_results(check_set, *predict(model.predict, check_set["text"]))
        rates = gate.pass_rates(check_results)
        mlflow.log_metrics(rates)
        mlflow.log_table(check_results, "behaviour_checks.json")

        champion = promotion.current_champion(client, name, version)
        champion_f1 = None
        if champion:
            champion_predict = load_model(f"models:/{name}/{champion}").predict
            champion_f1 = evaluate(test["text"], test["label"], *predict(champion_predict, test["text"]),
                                   "champion_")["f1"]
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
            promotion.reject(client, name, version, reason)
            raise PipelineError(f"{name} version {version} not promoted: {reason}; "
                                + (f"champion stays at version {champion}" if champion else "no champion set"))
        best = promotion.promote(client, name, version, scores["f1"])
        click.echo(f"{name} version {version} passed; @{promotion.CHAMPION_ALIAS} is version {best}"
                   + ("" if best == str(version) else " (a passed version with a higher recorded test spam F1)"))
        tracking.set_output(f"models:/{name}/{version}")


if __name__ == "__main__":
    main()
