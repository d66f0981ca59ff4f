"""The promotion gate's rules, its report and the behaviour checks (steps/core/gate.py), and the baseline."""


import numpy as np
import pandas as pd
import pytest

from steps.core import baseline, data, gate
from steps.core.errors import PipelineError
from steps.core.metrics import classification_metrics
from steps.core.specs import Gate
from steps.core.task import Task
from steps.plumbing import evaluation
from tests.helpers import written

SMS = Task(("ham", "spam"), "spam")


def checked(passed, capability=None):
    """Results of len(passed) checks of expected spam, each passed or not."""
    checks = pd.DataFrame({"text": [f"check message number {i}" for i in range(len(passed))], "label": 1,
                           "capability": capability or ["prize"] * len(passed)})
    predicted = np.array([1 if ok else 0 for ok in passed])
    return gate.check_results(checks, predicted, np.stack([1 - predicted * 0.9, predicted * 0.9], axis=1), SMS)


GATE = {"min_accuracy": 0.95, "min_f1": 0.85, "min_check_pass_rate": 0.9}


def rejection_reason(scores, check_results, task=SMS, baseline_f1=None, champion_f1=None, champion_version=None,
                     **thresholds):
    """The gate's rules for these scores, checked through MLflow as validate checks them."""
    rates = gate.pass_rates(check_results) if check_results is not None else {}
    rules = gate.rules(task, scores, check_results, Gate(**thresholds), baseline_f1, champion_f1, champion_version)
    return evaluation.rejection_reason(rules, {**scores, **rates})


def test_gate_passes_a_good_version_no_worse_than_champion():
    assert rejection_reason({"accuracy": 0.98, "f1": 0.92}, checked([True] * 4), **GATE, champion_f1=0.92,
                                 champion_version="3") is None


def test_validates_one_line_report_reads_the_evidence():
    evidence = gate.Evidence(SMS, {"accuracy": 0.98, "f1": 0.9, "roc_auc": 0.99}, {"f1": 0.88},
                             checked([True] * 3 + [False]), champion="2", champion_scores={"f1": 0.91},
                             serving_format="onnx", disagreements=1, test_counts={"ham": 170, "spam": 30})
    assert evidence.report("3") == ("version 3: accuracy 0.9800, f1 0.9000, roc_auc 0.9900 (spam F1 as f1); checks "
                                    "passed 3/4 (prize 75%); baseline F1 0.8800; champion version 2 F1 0.9100; "
                                    "onnx: 1 of 200 test messages answered otherwise than by the fp32 checkpoint")
    assert gate.Evidence(SMS, {"accuracy": 0.98, "f1": 0.9}, {"f1": 0.88}).report("1") == (
        "version 1: accuracy 0.9800, f1 0.9000 (spam F1 as f1); no checks; baseline F1 0.8800; no champion yet")
    reasons = [rule.reason for rule in evidence.rules(Gate(min_check_pass_rate=0.8))]
    assert reasons[-1] == "test spam F1 0.9000 < champion (version 2) 0.9100" and len(reasons) == 5


def test_a_champion_of_another_split_is_compared_on_the_test_rows_it_did_not_train_on():
    # Whole split: 0.90 < 0.91. The 40 rows the champion did not train on: the version 0.93 >= 0.92.
    evidence = gate.Evidence(SMS, {"accuracy": 0.98, "f1": 0.9}, {"f1": 0.88}, champion="2",
                             champion_scores={"f1": 0.92}, champion_rows=40, scores_beside_champion={"f1": 0.93})
    assert evidence.report("3") == ("version 3: accuracy 0.9800, f1 0.9000 (spam F1 as f1); no checks; baseline F1 "
                                    "0.8800; champion version 2 F1 0.9200 on the 40 test rows it did not train on "
                                    "(this version 0.9300)")
    assert evaluation.rejection_reason(evidence.rules(Gate(min_accuracy=0.5, min_f1=0.5)),
                                       evidence.gated_metrics) is None
    evidence.scores_beside_champion = {"f1": 0.91}
    assert evaluation.rejection_reason(evidence.rules(Gate(min_accuracy=0.5, min_f1=0.5)), evidence.gated_metrics) \
        == "test spam F1 0.9100 < champion (version 2) 0.9200 on the 40 test rows it did not train on"


def test_gate_passes_at_the_check_pass_rate_and_rejects_below_it():
    scores = {"accuracy": 0.98, "f1": 0.92}
    assert rejection_reason(scores, checked([True] * 9 + [False]), **GATE) is None  # 0.9 exactly
    reason = rejection_reason(scores, checked([True] * 8 + [False] * 2), **GATE)
    assert reason == ("behaviour checks passed 8/10 (80.0%) < min_check_pass_rate 0.9; failed: "
                      "'check message number 8...' (prize, expected spam), "
                      "'check message number 9...' (prize, expected spam)")
    assert rejection_reason(scores, checked([True] * 9 + [False]), **{**GATE, "min_check_pass_rate": 1})


def test_a_long_list_of_failed_checks_stays_one_line():
    reason = rejection_reason({"accuracy": 0.98, "f1": 0.92}, checked([False] * 20), **GATE)
    assert "\n" not in reason and reason.count("expected spam") == gate.FAILED_SHOWN
    assert reason.endswith("and 12 more (see behaviour_checks.json)")


def test_gate_wants_the_baseline_plus_the_margin():
    scores, passed = {"accuracy": 0.98, "f1": 0.95}, checked([True])
    assert rejection_reason(scores, passed, **GATE, baseline_f1=0.95) is None  # no worse than the baseline
    assert rejection_reason(scores, passed, **GATE, baseline_f1=0.96, min_margin_over_baseline=-0.02) is None
    assert rejection_reason(scores, passed, **GATE, baseline_f1=0.94, min_margin_over_baseline=0.02) == \
        "test spam F1 0.9500 < baseline (TF-IDF + linear SVM) F1 0.9400 + min_margin_over_baseline 0.02"


def test_baseline_learns_the_fixture_messages(sms_rows):
    frame, _ = data.normalise(pd.DataFrame(sms_rows, columns=["label", "text"]))
    frame = frame.assign(label=SMS.ids(frame["label"]))
    train_part, test_part = frame.iloc[:150], frame.iloc[150:]
    scores = classification_metrics(SMS, test_part["label"], *baseline.baseline_predictions(train_part, test_part, SMS))
    assert scores["f1"] >= 0.9 and scores["roc_auc"] >= 0.95
    assert baseline.fit_baseline(train_part["text"], train_part["label"]).predict(
        ["WINNER! Claim your FREE car, txt WIN to 80808", "See you at the pub after work"]).tolist() == [1, 0]


@pytest.mark.parametrize("scores, champion_f1, expected", [
    ({"accuracy": 0.90, "f1": 0.92}, None, "test accuracy 0.9000 < min_accuracy 0.95"),
    ({"accuracy": 0.98, "f1": 0.80}, None, "test spam F1 0.8000 < min_f1 0.85"),
    ({"accuracy": 0.98, "f1": 0.90}, 0.91, "test spam F1 0.9000 < champion (version 3) 0.9100"),
])
def test_gate_names_each_reason(scores, champion_f1, expected):
    assert expected in rejection_reason(scores, checked([True]), **GATE, champion_f1=champion_f1,
                                             champion_version="3")


def test_pass_rates_overall_and_per_capability():
    results = checked([True, False, True, True], capability=["prize", "prize", "slang ham", "slang ham"])
    assert gate.pass_rates(results) == {"checks_pass_rate": 0.75, "checks_pass_rate_prize": 0.5,
                                        "checks_pass_rate_slang_ham": 1.0}
    assert list(results.columns) == ["text", "capability", "expected", "predicted", "passed", "score_ham",
                                     "score_spam"]


def test_checks_file_without_a_capability_column_is_one_group(tmp_path):
    path = written(tmp_path / "mine.csv", "text,label\nlunch at 1?,ham\nWIN a prize txt 80808,spam\n")
    checks = gate.read_checks(str(path), SMS)
    assert checks.to_dict("list") == {"text": ["lunch at 1?", "WIN a prize txt 80808"], "label": [0, 1],
                                      "capability": ["all", "all"]}


def test_default_behaviour_suite_covers_each_capability():
    assert gate.default_checks(SMS) == gate.SMS_CHECKS and gate.default_checks(Task(("neg", "pos"), "pos")) is None
    checks = gate.read_checks(gate.SMS_CHECKS, SMS)
    counts = checks.groupby("capability")["label"].agg(["size", "min", "max"])
    assert len(checks) >= 40 and checks["text"].is_unique
    assert set(counts.index) == {"sms_prize_spam", "web_marketing_spam", "phishing_spam", "ham_money_numbers_free",
                                 "short_slang_ham", "long_ham"}
    assert (counts["size"] >= 6).all() and (counts["min"] == counts["max"]).all()  # one label per capability


def test_gate_of_another_task_reads_its_f1_and_needs_no_checks():
    task = Task(("billing", "bug", "praise"))
    assert rejection_reason({"accuracy": 0.97, "f1": 0.7}, None, task, **GATE, baseline_f1=0.8) == \
        "test macro F1 0.7000 < min_f1 0.85; test macro F1 0.7000 < baseline (TF-IDF + linear SVM) F1 0.8000 " \
        "+ min_margin_over_baseline 0"
    assert rejection_reason({"accuracy": 0.97, "f1": 0.9}, None, task, **GATE) is None


def test_a_checks_file_with_labels_not_of_the_task_is_one_line(tmp_path):
    path = written(tmp_path / "mine.csv", "text,label\nlunch at 1?,ham\nclick this link,phishing\n")
    with pytest.raises(PipelineError, match=r"^checks file .*mine.csv has labels the task does not know: "
                                            r"'phishing' 1; the task's labels are ham, spam$"):
        gate.read_checks(str(path), SMS)


def test_auto_floors_are_the_demos_for_ham_spam_and_none_for_other_tasks():
    """auto: the tutorial's 0.95 accuracy and 0.85 F1 for the ham/spam demo; no floor for another task,
    where the baseline and the champion still gate; a value given applies to any task."""
    weak = {"accuracy": 0.30, "f1": 0.40}
    assert "min_accuracy 0.95" in rejection_reason(weak, None) and "min_f1 0.85" in rejection_reason(weak, None)
    tags = Task(("a", "b", "c"), multi_label=True)
    assert rejection_reason(weak, None, task=tags) is None
    assert "baseline (TF-IDF + linear SVM) F1 0.5000" in rejection_reason(weak, None, task=tags, baseline_f1=0.5)
    assert rejection_reason(weak, None, task=tags, min_f1=0.5) == "test macro F1 0.4000 < min_f1 0.5"
    assert rejection_reason(weak, None, task=tags, min_f1="0.3", min_accuracy="0.2") is None


def test_a_floor_is_auto_or_a_number_from_0_to_1_else_one_line():
    from click.testing import CliRunner

    from steps import validate

    for given, expected in (("high", "'high' is not a valid float"), ("1.5", "1.5 is not in the range 0<=x<=1")):
        result = CliRunner().invoke(validate.main, ["--model-uri", "models:/m/1", "--test-data", "x",
                                                    "--min-f1", given])
        assert result.exit_code == 2 and expected in result.output, result.output


def test_each_comparison_is_reported_with_its_interval():
    from steps.core import card
    from steps.core.compare import Difference

    evidence = gate.Evidence(SMS, {"accuracy": 0.98, "f1": 0.9}, {"f1": 0.89}, champion="2",
                             champion_scores={"f1": 0.93}, baseline_difference=Difference(0.01, -0.004, 0.025),
                             champion_difference=Difference(-0.03, -0.07, -0.002), test_counts={"ham": 90, "spam": 10})
    assert evidence.report("3") == (
        "version 3: accuracy 0.9800, f1 0.9000 (spam F1 as f1); no checks; baseline F1 0.8900 (spam F1 +0.010 over "
        "TF-IDF (95% interval -0.004 to +0.025): not distinguishable); champion version 2 F1 0.9300 (spam F1 -0.030 "
        "over the champion (95% interval -0.070 to -0.002): worse)")
    assert evidence.differences == {"baseline_delta": 0.01, "baseline_delta_low": -0.004, "baseline_delta_high": 0.025,
                                    "champion_delta": -0.03, "champion_delta_low": -0.07, "champion_delta_high": -0.002}
    assert ("Paired bootstrap over the same test rows: spam F1 +0.010 over the TF-IDF baseline (95% interval -0.004 "
            "to +0.025): not distinguishable; spam F1 -0.030 over the champion") in card.evaluation_section(evidence,
                                                                                                  "passed the gate.")
