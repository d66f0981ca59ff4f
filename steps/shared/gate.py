"""The promotion gate: behaviour checks read as pass rates per capability, and the rules a
version must meet to become champion. Pure functions: no MLflow, no command line.

Behaviour checks follow CheckList (Ribeiro et al., ACL 2020): messages grouped by the
capability they test, read as failure rates rather than all-or-nothing.
"""

import re
from pathlib import Path

import pandas as pd

from steps.shared import baseline, data

DEFAULT_CHECKS = str(Path(__file__).resolve().parents[1] / "checks" / "behaviour.csv")  # steps/checks/
UNGROUPED = "all"  # the capability of every row of a checks file without a capability column
FAILED_SHOWN = 8   # failed messages named in a rejection reason; the rest are in behaviour_checks.json


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


def rejection_reason(scores: dict, check_results: pd.DataFrame, *, min_accuracy: float, min_f1: float,
                     min_check_pass_rate: float, baseline_f1: float | None = None,
                     min_margin_over_baseline: float = 0.0, champion_f1: float | None = None,
                     champion_version: str | None = None) -> str | None:
    """Why this version may not become champion, or None when it may."""
    reasons = []
    rate = float(check_results["passed"].mean())
    if rate < min_check_pass_rate:
        passed = int(check_results["passed"].sum())
        reasons.append(f"behaviour checks passed {passed}/{len(check_results)} ({rate:.1%}) < min_check_pass_rate "
                       f"{min_check_pass_rate:g}; failed: {failed_checks(check_results)}")
    if scores["accuracy"] < min_accuracy:
        reasons.append(f"test accuracy {scores['accuracy']:.4f} < min_accuracy {min_accuracy}")
    if scores["f1"] < min_f1:
        reasons.append(f"test spam F1 {scores['f1']:.4f} < min_f1 {min_f1}")
    if baseline_f1 is not None and scores["f1"] < baseline_f1 + min_margin_over_baseline:
        reasons.append(f"test spam F1 {scores['f1']:.4f} < baseline ({baseline.NAME}) F1 {baseline_f1:.4f} "
                       f"+ min_margin_over_baseline {min_margin_over_baseline:g}")
    if champion_f1 is not None and scores["f1"] < champion_f1:
        reasons.append(f"test spam F1 {scores['f1']:.4f} < champion (version {champion_version}) {champion_f1:.4f}")
    return "; ".join(reasons) or None
