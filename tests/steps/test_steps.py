"""Each step through its click entry point against a temporary store: what it logs, and bad input as one line."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from steps import prepare, register, tokenize, train
from steps.core import hardware
from steps.core.task import Task, read_task, write_task
from steps.core.training import read_tokenized
from steps.plumbing import contract
from tests.helpers import assert_one_line_error, runs_in, written

SMS = Task(("ham", "spam"), "spam")


def invoke(command, *args):
    result = CliRunner().invoke(command, [str(a) for a in args])
    return result, result.output.strip().splitlines()


def only_run(client):
    [run] = runs_in(client, "tests")
    return run


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
    runs = runs_in(tracking, "tests")
    run = next(r for r in runs if r.data.tags["output_uri"].endswith("/tokenized"))
    assert run.data.tags["data_digest"]  # carried from prepare
    assert 0 < run.data.metrics["token_length_median"] <= run.data.metrics["token_length_max"]
    folder = Path(tracking.download_artifacts(run.info.run_id, "tokenized"))
    datasets, tokenizer, task = read_tokenized(folder)
    assert set(datasets) == set(contract.SPLITS) and task == SMS
    assert max(len(ids) for ids in datasets["train"]["input_ids"]) <= 32
    assert tokenizer.is_fast


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
        written(path, content)
    result, lines = invoke(prepare.main, "--dataset", path)
    assert_one_line_error(result, *fragments)
    run = only_run(tracking)
    assert run.info.status == "FAILED" and run.data.tags["error"] == lines[-1][len("Error: "):]


def test_tokenize_with_missing_model_folder_fails_with_one_line(tracking, uci_file, tmp_path):
    invoke(prepare.main, "--dataset", uci_file)
    data_uri = only_run(tracking).data.tags["output_uri"]
    result, lines = invoke(tokenize.main, "--data", data_uri, "--model", tmp_path / "no-model")
    assert_one_line_error(result, "no-model does not exist", "save_pretrained")


def test_train_of_a_folder_that_tokenize_did_not_write_fails_with_one_line(tracking, tmp_path):
    result, lines = invoke(train.main, "--tokenized", tmp_path)
    assert_one_line_error(result, "has no dataset/, tokenizer/ and task.json", "output URI of tokenize")


def test_tuned_thresholds_for_a_task_of_one_label_a_text_is_one_line_before_training(tokenized):
    result, lines = invoke(train.main, "--tokenized", tokenized, "--model", "unused", "--thresholds", "tuned")
    assert_one_line_error(result, "thresholds=tuned is for multi-label tasks", "leave thresholds at auto or fixed")


def test_register_of_something_that_is_no_checkpoint_registers_nothing(tracking, tmp_path):
    result, lines = invoke(register.main, "--checkpoint", tmp_path)
    assert_one_line_error(result, "holds no model", "output URI of train")
    assert tracking.search_model_versions() == []


@pytest.mark.parametrize("damage, expected", [("missing", "holds no lexical.joblib"),
                                               ("corrupt", "cannot load")])
def test_register_of_a_blend_whose_lexical_model_is_missing_or_broken_registers_nothing(tracking, tiny_model, tmp_path,
                                                                                      damage, expected):
    folder = shutil.copytree(tiny_model, tmp_path / "checkpoint")
    write_task(Task(("ham", "spam"), "spam", blend_weight=0.4), folder)
    if damage == "corrupt":
        (folder / "lexical.joblib").write_bytes(b"not a pickle")
    result, lines = invoke(register.main, "--checkpoint", folder)
    assert_one_line_error(result, expected, "train again")
    assert tracking.search_model_versions() == []


def test_an_unknown_blend_names_the_choices(tokenized):
    result, _ = invoke(train.main, "--tokenized", tokenized, "--model", "unused", "--blend", "mean")
    assert result.exit_code == 2 and "'mean' is not one of 'auto', 'none'" in result.output


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
