"""Gathering validate's evidence on a registered version: its scores on the test split (and the
baseline's, and the champion's, each through MLflow's evaluation into the active run), its
behaviour checks, and how far its serving format strays from its fp32 checkpoint. The rules and
the report are the core's (steps/core/gate.py)."""

import time

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from steps.core import baseline, card, compare, data, gate
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


def splits_trained_on(client, name: str, version: str) -> str | None:
    """URI of the prepared splits `version` trained and was validated on, through its lineage
    (its train run's `tokenized` input, that tokenize run's `data` input); None where it is not
    recorded (a version registered by hand, or its runs deleted)."""
    try:
        train_run = client.get_run(client.get_model_version(name, version).tags[contract.TRAIN_RUN_TAG])
        return client.get_run(tracking.run_id_of(train_run.data.params["tokenized"])).data.params["data"]
    except (KeyError, MlflowException):
        return None


def unseen_by(client, name: str, version: str, test: pd.DataFrame, test_data: str) -> np.ndarray | None:
    """Which `test` rows the champion `version` neither trained nor was validated on: None for
    every row (it trained on this split, or what it trained on is not recorded), else a mask of
    the rows in neither its train nor its validation split."""
    data_uri = splits_trained_on(client, name, version)
    if data_uri is None or contract.split_uri(data_uri, "test") == test_data:
        return None
    seen = pd.concat([pd.read_parquet(tracking.download(contract.split_uri(data_uri, split),
                                                        f"version {version}'s {split} split"))
                      for split in ("train", "validation")])
    return data.unseen(test, seen)


def compare_with_champion(client, name: str, version: str, task: Task, test: pd.DataFrame, test_data: str,
                          inputs, predicted, probabilities) -> dict:
    """Evidence's champion fields: the champion `version` is compared with and its scores on the
    test rows it did not train on (the whole split when it trained on this one; then `predicted`,
    the version's answers to `inputs`, are not made again), and the version's scores on those
    rows (logged prefixed beside_champion_). Nothing without a champion. A champion of another
    task, or one that trained on every test text, cannot be compared: the version is rejected,
    in one line."""
    champion = promotion.current_champion(client, name, version)
    if not champion:
        return {}

    def refuse(reason: str):
        promotion.reject(client, name, version, reason)
        raise PipelineError(f"{name} version {version} not promoted: {reason}; champion stays at version {champion}")

    champion_task = model_task(f"models:/{name}/{champion}")
    if champion_task != task:
        refuse(f"the champion (version {champion}) answers labels {', '.join(champion_task.labels)}, this version "
               f"{', '.join(task.labels)}: register a new label set under another registered_model_name")
    rows = unseen_by(client, name, champion, test, test_data)
    if rows is not None and not rows.any():
        refuse(f"the champion (version {champion}) trained on every text of this test split, so the two cannot be "
               "compared fairly: validate on a split the champion did not train on")
    beside = {}
    if rows is not None:
        test, inputs, predicted = test[rows], inputs[rows], predicted[rows]
        mlflow.log_metric("champion_rows", int(rows.sum()))
        beside = {"champion_rows": int(rows.sum()), "scores_beside_champion": evaluate(
            task, test["text"], test["label"], predicted, probabilities[rows], gate.BESIDE_CHAMPION_PREFIX)}
    champion_predict = load_model(f"models:/{name}/{champion}").predict  # answering at its own thresholds
    champion_answers, champion_probabilities = predict(champion_predict, inputs, champion_task)
    return {"champion": champion, **beside, "champion_scores": evaluate(
        task, test["text"], test["label"], champion_answers, champion_probabilities, "champion_"),
        "champion_difference": compare.paired_difference(task, task.targets(test["label"]), predicted,
                                                         champion_answers)}


def gather(client, name: str, version: str, task: Task, test: pd.DataFrame, test_data: str, train: pd.DataFrame,
           check_set: pd.DataFrame | None) -> gate.Evidence:
    """Score the version, the baseline and the champion on `test` (read from `test_data`) and the
    version on the checks, logging each into the active run; the evidence the gate reads."""
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
    baseline_answers, baseline_probabilities = baseline.baseline_predictions(train, test, task)
    baseline_scores = evaluate(task, test["text"], test["label"], baseline_answers, baseline_probabilities,
                               "baseline_")
    check_results = None
    if check_set is not None:
        check_results = gate.check_results(check_set, *predict(model.predict, task.model_input(check_set), task), task)
        mlflow.log_table(check_results, "behaviour_checks.json")
    evidence = gate.Evidence(task, scores, baseline_scores, check_results, serving_format=serving_format,
                             disagreements=disagreements, test_counts=task.counts(test["label"]),
                             confusions=card.confused_pairs(task, labels, predicted), test_rows=len(test),
                             baseline_difference=compare.paired_difference(task, labels, predicted, baseline_answers),
                             **compare_with_champion(client, name, version, task, test, test_data, inputs, predicted,
                                                    probabilities))
    mlflow.log_metrics({**evidence.rates, **evidence.differences})
    return evidence
