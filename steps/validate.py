"""validate: score a registered version on the held-out test split and gate its promotion.

Inputs:  model_uri (models:/<name>/<version> or models:/<name>@<alias>), test_data (URI of
         prepare's test.parquet; the task.json beside it names the labels), train_data (its
         train.parquet, for the baseline; default: the one beside test_data), min_accuracy,
         min_f1 (the task's F1: the positive class's for a binary task, macro for more), checks
         (a file of messages with their expected label and capability; default: for the ham/spam
         task steps/checks/behaviour.csv, for another task none), min_check_pass_rate,
         min_margin_over_baseline.
Logs:    through mlflow.models.evaluate, into this run: MLflow's classifier metrics and N x N
         confusion matrix prefixed test_ for the version, baseline_ for a TF-IDF + linear SVM fitted on
         train_data, champion_ for the current champion, each on the same test split; the
         project's names beside them (test_accuracy, test_precision, test_recall, test_f1,
         test_macro_f1, test_roc_auc, and test_precision_/recall_/f1_<label> for each class;
         baseline_ and champion_ alike); with checks, checks_pass_rate overall and
         checks_pass_rate_<capability> and behaviour_checks.json; misclassified.json;
         format_disagreements: how many test messages the version (in its serving format and
         dtype: tag serving_format) answers differently from its fp32 checkpoint read the same
         way; messages_per_second: the version's scoring of the test split, in this process.
Gate:    MetricThresholds checked by mlflow.validate_evaluation_results: the checks' pass rate
         reaches min_check_pass_rate (when there are checks), the thresholds hold, the task's F1 is
         at least the baseline's plus min_margin_over_baseline, and no worse than the current
         `champion` on the same split. A champion trained on other labels cannot be compared:
         the version is refused. Passed: the version records its test F1 and `champion` moves to the
         best passed version (steps/shared/promotion.py). Otherwise the version is tagged rejected
         with the reason, `champion` stays, and the step fails.
Output:  models:/<name>/<version>
"""

import time
from pathlib import Path

import click
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from steps.core import baseline, gate
from steps.core.errors import PipelineError
from steps.core.specs import Gate
from steps.core.task import read_task
from steps.shared import contract, promotion, tracking
from steps.shared.cli import spec_from, spec_options, summary
from steps.shared.evaluation import evaluate, rejection_reason
from steps.shared.scoring import checkpoint_predict, load_model, model_task, predict, registered_version


def format_disagreements(client, name: str, version: str, inputs, predicted, task) -> tuple[str, int | None]:
    """The version's serving format, and how many inputs it labels otherwise than its fp32
    checkpoint does (logged as format_disagreements); None when no checkpoint is recorded. `task`
    is the version's own: the checkpoint reads texts as the version does."""
    tags = client.get_model_version(name, version).tags
    serving_format = tags.get(contract.FORMAT_TAG, "transformers")
    if contract.CHECKPOINT_TAG not in tags:
        return serving_format, None
    checkpoint = tracking.download(tags[contract.CHECKPOINT_TAG], "the version's checkpoint")
    reference, _ = predict(checkpoint_predict(checkpoint, task), inputs, task)
    disagreements = int((reference != predicted).sum())
    mlflow.log_metric("format_disagreements", disagreements)
    return serving_format, disagreements


@click.command(help=summary(__doc__))
@click.option("--model-uri", required=True)
@click.option("--test-data", required=True, help="URI of prepare's test.parquet.")
@click.option("--train-data", default="", help="URI of prepare's train.parquet (the baseline's training data); "
                                               "empty: the train.parquet beside test_data.")
@spec_options(Gate)
def main(model_uri, test_data, train_data, **options):
    thresholds = spec_from(Gate, options)
    with tracking.step_run():
        client = MlflowClient()
        name, version = registered_version(client, model_uri)
        test = pd.read_parquet(tracking.download(test_data, "the test split"))
        train_data = train_data or contract.beside(test_data, contract.split_file("train"))
        train = pd.read_parquet(tracking.download(train_data, "the train split"))
        task = read_task(Path(tracking.download(contract.beside(test_data, contract.TASK_FILE),
                                                f"the task ({contract.TASK_FILE} beside test_data)"))
                         .parent)
        checks = thresholds.checks or gate.default_checks(task)
        check_set = gate.read_checks(checks, task) if checks else None
        trained_on = model_task(f"models:/{name}/{version}")  # its MLmodel file alone: before loading the model
        if trained_on != task:
            raise PipelineError(f"{name} version {version} answers labels {', '.join(trained_on.labels)} of "
                                f"{trained_on.inputs_name}, the test data has {', '.join(task.labels)} of "
                                f"{task.inputs_name}: validate it on the output of its own prepare")
        model = load_model(f"models:/{name}/{version}")

        start = time.perf_counter()
        inputs = task.model_input(test)
        predicted, probabilities = predict(model.predict, inputs, task)
        mlflow.log_metric("messages_per_second", len(test) / (time.perf_counter() - start))
        scores = evaluate(task, test["text"], test["label"], predicted, probabilities, "test_")
        mlflow.log_table(test.assign(predicted=predicted, probability=probabilities.max(axis=1))
                         [predicted != test["label"].to_numpy()], "misclassified.json")
        serving_format, disagreements = format_disagreements(client, name, version, inputs, predicted, trained_on)
        baseline_scores = evaluate(task, test["text"], test["label"], *baseline.baseline_predictions(train, test),
                                   "baseline_")
        check_results, rates = None, {}
        if check_set is not None:
            check_results = gate.check_results(check_set, *predict(model.predict, task.model_input(check_set), task),
                                               task)
            rates = gate.pass_rates(check_results)
            mlflow.log_metrics(rates)
            mlflow.log_table(check_results, "behaviour_checks.json")

        champion = promotion.current_champion(client, name, version)
        champion_f1 = None
        if champion:
            champion_task = model_task(f"models:/{name}/{champion}")
            if champion_task != task:
                reason = (f"the champion (version {champion}) answers labels {', '.join(champion_task.labels)}, this "
                          f"version {', '.join(task.labels)}: register a new label set under another "
                          "registered_model_name")
                promotion.reject(client, name, version, reason)
                raise PipelineError(f"{name} version {version} not promoted: {reason}; champion stays at version "
                                    f"{champion}")
            champion_predict = load_model(f"models:/{name}/{champion}").predict
            champion_f1 = evaluate(task, test["text"], test["label"], *predict(champion_predict, inputs, task),
                                   "champion_")["f1"]
        click.echo(f"version {version}: " + ", ".join(f"{k} {scores[k]:.4f}" for k in
                                                      ("accuracy", "precision", "recall", "f1", "macro_f1", "roc_auc")
                                                      if k in scores)
                   + f" ({task.f1_name} as f1); "
                   + (f"checks passed {int(check_results['passed'].sum())}/{len(check_results)} ("
                      + ", ".join(f"{key[len('checks_pass_rate_'):]} {value:.0%}" for key, value in rates.items()
                                  if key != "checks_pass_rate") + "); " if check_results is not None else "no checks; ")
                   + f"baseline F1 {baseline_scores['f1']:.4f}"
                   + (f"; champion version {champion} F1 {champion_f1:.4f}" if champion else "; no champion yet")
                   + ("" if disagreements is None else f"; {serving_format}: {disagreements} of {len(test)} test "
                      "messages answered otherwise than by the fp32 checkpoint"))

        rules = gate.rules(task, scores, check_results, thresholds, baseline_scores["f1"], champion_f1, champion)
        reason = rejection_reason(rules, {**scores, **rates})
        if reason:
            promotion.reject(client, name, version, reason)
            stays = promotion.champion_version(client, name)  # this version itself, when it is validated again
            raise PipelineError(f"{name} version {version} not promoted: {reason}; "
                                + (f"champion stays at version {stays}" if stays else "no champion set"))
        best = promotion.promote(client, name, version, scores["f1"])
        click.echo(f"{name} version {version} passed; @{contract.CHAMPION_ALIAS} is version {best}"
                   + ("" if best == str(version) else
                      f" (a passed version with a higher recorded test {task.f1_name})"))
        tracking.set_output(f"models:/{name}/{version}")


if __name__ == "__main__":
    main()
