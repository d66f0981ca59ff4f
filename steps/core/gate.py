"""The promotion gate's rules: behaviour checks read as pass rates per capability, and the
thresholds a version must meet to become champion, each with the reason it gives should it
fail. Pure: the plumbing checks them through MLflow (steps/plumbing/evaluation.py).

Behaviour checks follow CheckList (Ribeiro et al., ACL 2020): messages grouped by the
capability they test, read as failure rates rather than all-or-nothing. The SMS suite
(steps/checks/behaviour.csv) is the default for the ham/spam task only; other tasks are
gated on checks when a checks file is given.
"""

import re
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from steps.core import baseline, data
from steps.core.compare import Difference
from steps.core.specs import AUTO, Gate
from steps.core.task import Task, metric_key

SMS_CHECKS = str(Path(__file__).resolve().parents[1] / "checks" / "behaviour.csv")  # steps/checks/
UNGROUPED = "all"  # the capability of every row of a checks file without a capability column
FAILED_SHOWN = 8   # failed messages named in a rejection reason; the rest are in behaviour_checks.json
BESIDE_CHAMPION_PREFIX = "beside_champion_"  # the version's scores on the test rows the champion did not train on
BESIDE_CHAMPION = BESIDE_CHAMPION_PREFIX + "f1"
GATE_FIELDS = {spec_field.name: spec_field for spec_field in fields(Gate)}
REPORTED = ("accuracy", "precision", "recall", "f1", "macro_f1", "micro_f1", "hamming_loss", "roc_auc")  # validate's line


@dataclass(frozen=True)
class Rule:
    metric: str     # a key of the version's metrics
    at_least: float
    reason: str     # in the project's words, should the metric fall below


def default_checks(task: Task) -> str | None:
    return SMS_CHECKS if task.is_sms_spam else None


def read_checks(path: str, task: Task) -> pd.DataFrame:
    """A checks file (CSV/JSON/Parquet of text, expected label (a multi-label task: the expected
    tags, a list or joined by its separator) and optional capability; a pair task's two text
    columns under the data's names) as `text` (and `text_pair`), `label` (as the task's splits hold
    it) and `capability` columns."""
    table = data.read_table(path, "checks")
    checks, _ = data.normalise(table, ",".join(task.pair_columns or ()),
                               label_separator=task.label_separator if task.multi_label else "")
    capability = table["capability"].astype(str) if "capability" in table.columns else UNGROUPED
    return checks.assign(label=task.ids(checks["label"], f"checks file {path}"), capability=capability)


def check_results(checks: pd.DataFrame, predicted, probabilities, task: Task) -> pd.DataFrame:
    """Each check with what the model predicted, its probability of each class, and whether it was
    expected (multi-label: exactly the expected tags)."""
    scores = pd.DataFrame(np.asarray(probabilities), columns=[f"score_{metric_key(label)}" for label in task.labels])
    expected = task.targets(checks["label"])
    return pd.concat([checks.filter(["text", "text_pair"]).reset_index(drop=True), pd.DataFrame({
        "capability": checks["capability"].to_numpy(), "expected": task.named(expected),
        "predicted": task.named(predicted), "passed": ~task.wrong(expected, predicted)}), scores], axis=1)


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


def rules(task: Task, scores: dict, check_results: pd.DataFrame | None, thresholds: Gate,
          baseline_f1: float | None = None, champion_f1: float | None = None,
          champion_version: str | None = None, champion_rows: int | None = None,
          f1_beside_champion: float | None = None) -> list[Rule]:
    """The gate: checks (when there are any), the thresholds, the baseline plus the margin, and no
    worse than the champion on the same test texts: the whole split, or (`champion_rows`) those of
    it the champion did not train on, where the version scored `f1_beside_champion`. The F1 is the
    task's (`task.f1_name`)."""
    accuracy, f1, f1_name = scores["accuracy"], scores["f1"], task.f1_name
    min_accuracy, min_f1 = (floor(thresholds, name, task) for name in ("min_accuracy", "min_f1"))
    min_check_pass_rate, min_margin_over_baseline = thresholds.min_check_pass_rate, thresholds.min_margin_over_baseline
    gate = []
    if check_results is not None:
        rate, passed = float(check_results["passed"].mean()), int(check_results["passed"].sum())
        gate.append(Rule("checks_pass_rate", min_check_pass_rate,
                         f"behaviour checks passed {passed}/{len(check_results)} ({rate:.1%}) < min_check_pass_rate "
                         f"{min_check_pass_rate:g}; failed: {failed_checks(check_results)}"))
    if min_accuracy is not None:
        gate.append(Rule("accuracy", min_accuracy, f"test accuracy {accuracy:.4f} < min_accuracy {min_accuracy:g}"))
    if min_f1 is not None:
        gate.append(Rule("f1", min_f1, f"test {f1_name} {f1:.4f} < min_f1 {min_f1:g}"))
    if baseline_f1 is not None:
        gate.append(Rule("f1", baseline_f1 + min_margin_over_baseline,
                         f"test {f1_name} {f1:.4f} < baseline ({baseline.NAME}) F1 {baseline_f1:.4f} "
                         f"+ min_margin_over_baseline {min_margin_over_baseline:g}"))
    if champion_f1 is not None:
        metric, mine = ("f1", f1) if champion_rows is None else (BESIDE_CHAMPION, f1_beside_champion)
        gate.append(Rule(metric, champion_f1, f"test {f1_name} {mine:.4f} < champion (version {champion_version}) "
                                              f"{champion_f1:.4f}{rows_unseen_by_champion(champion_rows)}"))
    return gate


def floor(thresholds: Gate, name: str, task: Task) -> float | None:
    """A gate field's floor: as given, or for `auto` the demo's (the ham/spam task) and none elsewhere."""
    value = getattr(thresholds, name)
    if value != AUTO:
        return float(value)
    return GATE_FIELDS[name].metadata["auto"] if task.is_sms_spam else None


def rows_unseen_by_champion(champion_rows: int | None) -> str:
    """Where the champion was scored, as the gate's words say it: nothing for the whole split."""
    return "" if champion_rows is None else f" on the {champion_rows} test rows it did not train on"


@dataclass
class Evidence:
    """What validate found for one version: everything the gate's rules and its report read."""
    task: Task
    scores: dict                      # the version's test scores (the project's short names)
    baseline_scores: dict             # the TF-IDF baseline's on the same split
    check_results: pd.DataFrame | None = None
    champion: str | None = None       # the champion it is compared with, if any
    champion_scores: dict | None = None  # its scores on the same split (or the rows of it it did not train on)
    serving_format: str = "transformers"
    disagreements: int | None = None  # test texts the served format answers otherwise than the fp32 checkpoint
    test_counts: dict = field(default_factory=dict)  # the test split's rows of each class (or carrying each tag)
    confusions: list = field(default_factory=list)   # the most frequent (true, predicted, count) mistakes
    test_rows: int | None = None  # the test split's rows; None: its classes' counts summed (one class a row)
    champion_rows: int | None = None  # the test rows the champion did not train on; None: every row
    scores_beside_champion: dict | None = None  # the version's scores on those rows
    baseline_difference: Difference | None = None  # the version's F1 minus the baseline's, with its interval
    champion_difference: Difference | None = None  # minus the champion's, on the rows both are compared on
    rates: dict = field(init=False)

    def __post_init__(self):
        self.rates = pass_rates(self.check_results) if self.check_results is not None else {}
        if self.test_rows is None:
            self.test_rows = sum(self.test_counts.values())

    @property
    def champion_f1(self) -> float | None:
        return self.champion_scores["f1"] if self.champion_scores else None

    @property
    def f1_beside_champion(self) -> float | None:
        return self.scores_beside_champion["f1"] if self.scores_beside_champion else None

    @property
    def differences(self) -> dict[str, float]:
        """The intervals as validate logs them (baseline_delta, _low, _high; champion_ alike)."""
        return {**(self.baseline_difference.metrics("baseline_") if self.baseline_difference else {}),
                **(self.champion_difference.metrics("champion_") if self.champion_difference else {})}

    @property
    def gated_metrics(self) -> dict:
        """What the rules read: the version's scores, the checks' pass rates and its F1 beside the champion."""
        beside = {BESIDE_CHAMPION: self.f1_beside_champion} if self.scores_beside_champion else {}
        return {**self.scores, **self.rates, **beside}

    def rules(self, thresholds: Gate) -> list[Rule]:
        return rules(self.task, self.scores, self.check_results, thresholds, self.baseline_scores["f1"],
                     self.champion_f1, self.champion, self.champion_rows, self.f1_beside_champion)

    def report(self, version: str) -> str:
        """One line: the version's scores, its checks by capability, the baseline, the champion, the format."""
        scores, checks = self.scores, self.check_results
        parts = [f"version {version}: " + ", ".join(f"{k} {scores[k]:.4f}" for k in REPORTED if k in scores)
                 + f" ({self.task.f1_name} as f1)"]
        if checks is None:
            parts.append("no checks")
        else:
            capabilities = ", ".join(f"{key[len('checks_pass_rate_'):]} {value:.0%}"
                                     for key, value in self.rates.items() if key != "checks_pass_rate")
            parts.append(f"checks passed {int(checks['passed'].sum())}/{len(checks)} ({capabilities})")
        parts.append(f"baseline F1 {self.baseline_scores['f1']:.4f}" + (
            f" ({self.baseline_difference.said(self.task.f1_name, 'TF-IDF')})" if self.baseline_difference else ""))
        beside = "" if self.champion_rows is None else f" (this version {self.f1_beside_champion:.4f})"
        parts.append(f"champion version {self.champion} F1 {self.champion_f1:.4f}"
                     f"{rows_unseen_by_champion(self.champion_rows)}{beside}"
                     + (f" ({self.champion_difference.said(self.task.f1_name, 'the champion')})"
                        if self.champion_difference else "") if self.champion else "no champion yet")
        if self.disagreements is not None:
            parts.append(f"{self.serving_format}: {self.disagreements} of {self.test_rows} test messages answered "
                         "otherwise than by the fp32 checkpoint")
        return "; ".join(parts)
