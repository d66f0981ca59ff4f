"""The promotion gate: behaviour checks read as pass rates per capability, and the rules a
version must meet to become champion, as MLflow MetricThresholds checked by
`mlflow.validate_evaluation_results`. No tracking, no registry, no command line.

Behaviour checks follow CheckList (Ribeiro et al., ACL 2020): messages grouped by the
capability they test, read as failure rates rather than all-or-nothing.
"""

import logging
import re
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import EvaluationResult, MetricThreshold
from mlflow.models.evaluation.validation import ModelValidationFailedException

from steps.shared import baseline, data

DEFAULT_CHECKS = str(Path(__file__).resolve().parents[1] / "checks" / "behaviour.csv")  # steps/checks/
UNGROUPED = "all"  # the capability of every row of a checks file without a capability column
FAILED_SHOWN = 8   # failed messages named in a rejection reason; the rest are in behaviour_checks.json

logging.getLogger("mlflow.models.evaluation.validation").setLevel(logging.WARNING)  # two INFO lines a rule


def read_checks(path: str) -> pd.DataFrame:
    """A checks file (CSV/JSON/Parquet of text, expected label and optional capability) as
    `text`, `label` (0/1) and `capability` columns."""
    table = data.read_table(path, "checks")
    checks = data.normalise(table)
    capability = table["capability"].astype(str) if "capability" in table.columns else UNGROUPED
    return checks.assign(capability=capability)


def check_results(checks: pd.DataFrame, predicted, spam_probability) -> pd.DataFrame:
    """Each check with what the model predicted, its p(spam), and whether it was expected."""
    names = {i: name for name, i in data.LABELS.items()}
    return pd.DataFrame({
        "text": checks["text"].to_numpy(), "capability": checks["capability"].to_numpy(),
        "expected": checks["label"].map(names).to_numpy(), "predicted": [names[int(p)] for p in predicted],
        "spam_probability": spam_probability, "passed": checks["label"].to_numpy() == predicted,
    })


def metric_name(capability: str) -> str:
    return "checks_pass_rate_" + re.sub(r"[^0-9A-Za-z_.-]+", "_", capability)


def pass_rates(results: pd.DataFrame) -> dict[str, float]:
    """`checks_pass_rate` overall and `checks_pass_rate_<capability>` for each capability."""
    rates = {"checks_pass_rate": float(results["passed"].mean())}
    rates.update({metric_name(capability): float(group.mean())
                  for capability, group in results.groupby("capability", sort=True)["passed"]})
    return rates


def failed_checks(results: pd.DataFrame) -> str:
    failed = results[~results["passed"]]
    shown = [f"'{text[:40]}...' ({capability}, expected {expected})"
             for text, capability, expected in failed[["text", "capability", "expected"]].head(FAILED_SHOWN).itertuples(
                 index=False)]
    more = len(failed) - len(shown)
    return ", ".join(shown) + (f" and {more} more (see behaviour_checks.json)" if more > 0 else "")


def at_least(value: float) -> MetricThreshold:
    return MetricThreshold(threshold=float(value), greater_is_better=True)


def rules(scores: dict, check_results: pd.DataFrame, *, min_accuracy: float, min_f1: float,
          min_check_pass_rate: float, baseline_f1: float | None = None, min_margin_over_baseline: float = 0.0,
          champion_f1: float | None = None, champion_version: str | None = None) -> list[tuple]:
    """The gate as (metric, MetricThreshold, the reason in the project's words should it fail).

    The baseline and the champion become plain thresholds: MetricThreshold's `min_absolute_change`
    must be positive, so neither "no worse than the champion" nor a negative margin is a change,
    and MLflow compares a baseline result's metric of the same name, which prefixes rule out."""
    rate, passed = float(check_results["passed"].mean()), int(check_results["passed"].sum())
    accuracy, f1 = scores["accuracy"], scores["f1"]
    gate = [("checks_pass_rate", at_least(min_check_pass_rate),
             f"behaviour checks passed {passed}/{len(check_results)} ({rate:.1%}) < min_check_pass_rate "
             f"{min_check_pass_rate:g}; failed: {failed_checks(check_results)}"),
            ("accuracy", at_least(min_accuracy), f"test accuracy {accuracy:.4f} < min_accuracy {min_accuracy}"),
            ("f1", at_least(min_f1), f"test spam F1 {f1:.4f} < min_f1 {min_f1}")]
    if baseline_f1 is not None:
        gate.append(("f1", at_least(baseline_f1 + min_margin_over_baseline),
                     f"test spam F1 {f1:.4f} < baseline ({baseline.NAME}) F1 {baseline_f1:.4f} "
                     f"+ min_margin_over_baseline {min_margin_over_baseline:g}"))
    if champion_f1 is not None:
        gate.append(("f1", at_least(champion_f1),
                     f"test spam F1 {f1:.4f} < champion (version {champion_version}) {champion_f1:.4f}"))
    return gate


def rejection_reason(scores: dict, check_results: pd.DataFrame, **gate) -> str | None:
    """Why this version may not become champion (one line), or None when it may. Each rule is
    validated on its own: several rules read the F1, and MLflow's failure message names no rule."""
    result = EvaluationResult(metrics={**scores, **pass_rates(check_results)}, artifacts={})
    reasons = []
    for metric, threshold, reason in rules(scores, check_results, **gate):
        try:
            mlflow.validate_evaluation_results({metric: threshold}, result)
        except ModelValidationFailedException:
            reasons.append(reason)
    return "; ".join(reasons) or None
