"""Gathering validate's evidence on a registered version: its scores on the test split (and the
baseline's, and the champion's, each through MLflow's evaluation into the active run), its
behaviour checks, and how far its serving format strays from its fp32 checkpoint. The rules and
the report are the core's (steps/core/gate.py)."""

import time

import mlflow
import pandas as pd

from steps.core import baseline, card, gate
from steps.core.errors import PipelineError
from steps.core.task import Task
from steps.plumbing import contract, promotion, tracking
from steps.plumbing.evaluation import evaluate
from steps.plumbing.scoring import checkpoint_predict, load_model, model_task, predict


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
    disagreements = int(task.wrong(reference, predicted).sum())
    mlflow.log_metric("format_disagreements", disagreements)
    return serving_format, disagreements


def champion_scores(client, name: str, version: str, task: Task, test: pd.DataFrame,
                    inputs) -> tuple[str | None, dict | None]:
    """The champion `version` is compared with and its scores on the same split (None, None without
    one), scoring the version's own `inputs` (task.model_input of `test`) rather than making them
    again. A champion of another task cannot be compared: the version is rejected, in one line."""
    champion = promotion.current_champion(client, name, version)
    if not champion:
        return None, None
    champion_task = model_task(f"models:/{name}/{champion}")
    if champion_task != task:
        reason = (f"the champion (version {champion}) answers labels {', '.join(champion_task.labels)}, this "
                  f"version {', '.join(task.labels)}: register a new label set under another registered_model_name")
        promotion.reject(client, name, version, reason)
        raise PipelineError(f"{name} version {version} not promoted: {reason}; champion stays at version {champion}")
    champion_predict = load_model(f"models:/{name}/{champion}").predict  # answering at its own thresholds
    return champion, evaluate(task, test["text"], test["label"], *predict(champion_predict, inputs, champion_task),
                              "champion_")


def gather(client, name: str, version: str, task: Task, test: pd.DataFrame, train: pd.DataFrame,
           check_set: pd.DataFrame | None) -> gate.Evidence:
    """Score the version, the baseline and the champion on `test` and the version on the checks,
    logging each into the active run; the evidence the gate reads."""
    trained_on = model_task(f"models:/{name}/{version}")  # its MLmodel file alone: before loading the model
    if trained_on != task:
        raise PipelineError(f"{name} version {version} answers labels {', '.join(trained_on.labels)} of "
                            f"{trained_on.inputs_name}, the test data has {', '.join(task.labels)} of "
                            f"{task.inputs_name}: validate it on the output of its own prepare")
    task = trained_on  # the same labels, and a multi-label version's own thresholds
    model = load_model(f"models:/{name}/{version}")
    start = time.perf_counter()
    inputs = task.model_input(test)
    predicted, probabilities = predict(model.predict, inputs, task)
    mlflow.log_metric("messages_per_second", len(test) / (time.perf_counter() - start))
    scores = evaluate(task, test["text"], test["label"], predicted, probabilities, "test_")
    labels = task.targets(test["label"])
    mlflow.log_table(test.assign(predicted=task.named(predicted), probability=probabilities.max(axis=1))
                     [task.wrong(labels, predicted)], "misclassified.json")
    serving_format, disagreements = format_disagreements(client, name, version, inputs, predicted, trained_on)
    baseline_scores = evaluate(task, test["text"], test["label"], *baseline.baseline_predictions(train, test, task),
                               "baseline_")
    check_results = None
    if check_set is not None:
        check_results = gate.check_results(check_set, *predict(model.predict, task.model_input(check_set), task), task)
        mlflow.log_table(check_results, "behaviour_checks.json")
    champion, champion_scored = champion_scores(client, name, version, task, test, inputs)
    evidence = gate.Evidence(task, scores, baseline_scores, check_results, champion, champion_scored, serving_format,
                             disagreements, task.counts(test["label"]), card.confused_pairs(task, labels, predicted),
                             len(test))
    mlflow.log_metrics(evidence.rates)
    return evidence
