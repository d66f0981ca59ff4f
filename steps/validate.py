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
         baseline_ and champion_ alike; a champion trained on another split is scored on the test
         rows it did not train on, champion_rows of them, where the version's scores are logged
         prefixed beside_champion_); with checks, checks_pass_rate overall and
         checks_pass_rate_<capability> and behaviour_checks.json; misclassified.json;
         format_disagreements: how many test messages the version (in its serving format and
         dtype: tag serving_format) answers differently from its fp32 checkpoint read the same
         way; messages_per_second: the version's scoring of the test split, in this process;
         card/README.md: the version's model card with the figures and the verdict added, here and
         in the version's run (steps/plumbing/model_card.py), and the version's description.
Gate:    MetricThresholds checked by mlflow.validate_evaluation_results: the checks' pass rate
         reaches min_check_pass_rate (when there are checks), the thresholds hold, the task's F1 is
         at least the baseline's plus min_margin_over_baseline, and no worse than the current
         `champion` on the same test texts (those it did not train on). A champion trained on
         other labels, or on every test text, cannot be compared: the version is refused. Passed:
         the version records its test F1 and `champion` moves to the best passed version
         (steps/plumbing/promotion.py). Otherwise the version is tagged rejected with the reason,
         `champion` stays, and the step fails.
Output:  models:/<name>/<version>
"""

from pathlib import Path

import click
import pandas as pd
from mlflow.tracking import MlflowClient

from steps.core import gate
from steps.core.errors import PipelineError
from steps.core.specs import Gate
from steps.core.task import read_task
from steps.plumbing import contract, model_card, promotion, tracking, validation
from steps.plumbing.cli import spec_from, spec_options, summary
from steps.plumbing.evaluation import rejection_reason
from steps.plumbing.scoring import registered_version


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
                                                f"the task ({contract.TASK_FILE} beside test_data)")).parent)
        checks = thresholds.checks or gate.default_checks(task)
        check_set = gate.read_checks(checks, task) if checks else None

        evidence = validation.gather(client, name, version, task, test, test_data, train, check_set)
        click.echo(evidence.report(version))
        reason = rejection_reason(evidence.rules(thresholds), evidence.gated_metrics)
        model_card.publish(client, name, version, evidence, f"rejected: {reason}." if reason else "passed the gate.")
        if reason:
            promotion.reject(client, name, version, reason)
            stays = promotion.champion_version(client, name)  # this version itself, when it is validated again
            raise PipelineError(f"{name} version {version} not promoted: {reason}; "
                                + (f"champion stays at version {stays}" if stays else "no champion set"))
        best = promotion.promote(client, name, version, evidence.scores["f1"])
        click.echo(f"{name} version {version} passed; @{contract.CHAMPION_ALIAS} is version {best}"
                   + ("" if best == str(version) else f" (a passed version with a higher recorded test "
                                                       f"{task.f1_name})"))
        tracking.set_output(f"models:/{name}/{version}")


if __name__ == "__main__":
    main()
