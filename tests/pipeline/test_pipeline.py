"""The whole project as a user runs it: `mlflow run` of its git URL (a git daemon serving this
checkout on loopback) against a tracking server, every step in a subprocess. The runs and what
they log, the registered version and its gate, reuse of finished steps, two mains at once,
`reproduce`, and the failure paths. Reuse only of the same commit, and an uncommitted change
turning it off, are tested without a pipeline (test_steps); the project folder with the default
sqlite store, in test_multiclass."""

import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from steps import prepare, register, validate
from steps.core import blend
from steps.plumbing import scoring
from tests.helpers import (PROJECT_DIR, STEPS, assert_one_line_error, children, error_line, free_port, mlflow_run, output_of,
                           params, run_with_tracking, tiny_params, write_uci)

pytestmark = pytest.mark.slow

EXPERIMENT = "Spam Classifier Training"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("elsewhere")  # not the project: local paths would not resolve here


@pytest.fixture(scope="module")
def run_project(server, repo, workdir):
    """`mlflow run` of the project's git URL through the server, from a folder that is not the project's."""
    return lambda *args: mlflow_run(server, workdir, repo["url"], EXPERIMENT, *args)


@pytest.fixture(scope="module")
def client(server):
    mlflow.set_tracking_uri(server)
    yield MlflowClient(server)
    mlflow.set_tracking_uri(None)


def main_runs(client, filter_string=""):
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], " AND ".join(
        ["tags.`mlflow.project.entryPoint` = 'main'", *([filter_string] if filter_string else [])]),
        order_by=["attributes.start_time ASC"])


@pytest.fixture(scope="module")
def pipeline(run_project, client, uci_file, tiny_model, tiny_checks):
    result = run_project(*tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    steps = {r.data.tags["mlflow.project.entryPoint"]: r for r in runs if r is not parent}  # in the order they ran
    return {"result": result, "parent": parent, "children": steps}


def test_one_parent_with_five_finished_children_in_order(pipeline):
    parent, steps = pipeline["parent"], pipeline["children"]
    assert parent.info.status == "FINISHED" and parent.data.tags["mlflow.project.entryPoint"] == "main"
    assert re.fullmatch(r"model\d*/tiny-bert on data\d*/SMSSpamCollection, 5 epochs, seed 22", parent.info.run_name)
    assert list(steps) == STEPS
    for step, child in steps.items():
        assert child.info.status == "FINISHED", step
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.experiment_id == parent.info.experiment_id
        assert parent.data.tags[f"{step}_run_id"] == child.info.run_id


def test_runs_record_the_commit_the_source_and_the_environment(pipeline, repo, client):
    first, steps = pipeline["parent"], pipeline["children"]
    for current in [first, *steps.values()]:
        tags = current.data.tags
        assert tags["mlflow.source.git.commit"] == repo["commits"][1]
        assert tags["git_dirty"] == "false"
        assert [a.path for a in client.list_artifacts(current.info.run_id, "environment")] == \
            ["environment/versions.txt"]
    assert first.data.tags["mlflow.source.name"] == repo["url"]
    assert steps["train"].data.params["weight_decay"] == "0.0"  # defaults recorded too
    assert steps["train"].data.params["seed"] == steps["prepare"].data.params["seed"] == "22"
    assert len({r.data.tags["data_digest"] for r in steps.values() if r.data.tags["mlflow.project.entryPoint"]
                in ("prepare", "tokenize", "train", "register")}) == 1
    versions = client.download_artifacts(steps["train"].info.run_id, "environment/versions.txt")
    assert f"mlflow=={mlflow.__version__}" in open(versions).read()


def test_each_step_reads_the_previous_steps_output_uri(pipeline):
    runs = pipeline["children"]
    output = {step: run.data.tags["output_uri"] for step, run in runs.items()}
    assert output["prepare"] == f"runs:/{runs['prepare'].info.run_id}/data"
    assert runs["tokenize"].data.params["data"] == output["prepare"]
    assert runs["train"].data.params["tokenized"] == output["tokenize"]
    assert runs["register"].data.params["checkpoint"] == output["train"]
    assert runs["validate"].data.params["model_uri"] == output["register"] == "models:/spam-classifier/1"
    assert runs["validate"].data.params["test_data"] == output["prepare"] + "/test.parquet"


def test_train_logged_curves_and_a_loadable_checkpoint(pipeline, client):
    train = pipeline["children"]["train"]
    assert len(client.get_metric_history(train.info.run_id, "loss")) > 1
    assert len(client.get_metric_history(train.info.run_id, "eval_f1")) == 5  # one per epoch
    assert train.data.params["learning_rate"] == "0.003"  # the step's own params, not clobbered by the Trainer
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(train.data.metrics)
    files = {a.path.split("/")[-1] for a in client.list_artifacts(train.info.run_id, "checkpoint")}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert train.data.tags["resumable_epoch"] == "5"  # each epoch's resumable checkpoint was logged...
    assert "resumable" not in [a.path for a in client.list_artifacts(train.info.run_id)]  # ...and dropped at the end


def test_train_picks_the_blend_on_validation_and_the_version_serves_it(pipeline, client):
    """blend=auto (the default): the weight, each reader's validation F1 and their probabilities are
    logged; the checkpoint and the registered version carry the weight; the summary says what is served."""
    train, steps = pipeline["children"]["train"], pipeline["children"]
    metrics = train.data.metrics
    assert metrics["blend_weight"] in blend.WEIGHTS
    assert metrics["validation_f1_blend"] == metrics[{0.0: "validation_f1_encoder", 1.0: "validation_f1_lexical"}.get(
        metrics["blend_weight"], "validation_f1_blend")]
    kept = pd.read_json(client.download_artifacts(train.info.run_id, "validation_probabilities.json"), orient="split")
    assert len(kept) == steps["tokenize"].data.metrics["validation_windows"]
    assert list(kept.columns) == ["label", "encoder_ham", "encoder_spam", "lexical_ham", "lexical_spam"]
    served = scoring.model_task("models:/spam-classifier/1")
    assert served.blend_weight == metrics["blend_weight"]
    files = {a.path.split("/")[-1] for a in client.list_artifacts(train.info.run_id, "checkpoint")}
    assert ("lexical.joblib" in files) == (metrics["blend_weight"] > 0)
    assert "  served: " in pipeline["result"].stdout


def test_train_prints_where_it_is_and_the_time_left(pipeline):
    out = pipeline["result"].stdout
    assert re.search(r"^epoch 1/5 step 1/\d+ \(\d+% of training\), loss \d\.\d{4}; 0:00:0\d elapsed, "
                     r"about 0:\d\d:\d\d left$", out, re.MULTILINE), out[-3000:]
    validation_lines = r"^epoch \d/5 validation: loss \d\.\d+, accuracy \d\.\d+, f1 \d\.\d+, macro_f1 \d\.\d+$"
    assert len(re.findall(validation_lines, out, re.MULTILINE)) == 5
    assert "{'loss'" not in out  # no raw log dicts


def test_version_registered_with_aliases_and_lineage(pipeline, repo, client):
    steps = pipeline["children"]
    version = client.get_model_version_by_alias("spam-classifier", "champion")
    assert str(version.version) == "1"
    assert str(client.get_model_version_by_alias("spam-classifier", "candidate").version) == "1"
    assert version.tags["train_run_id"] == steps["train"].info.run_id
    assert version.tags["data_digest"] == steps["prepare"].data.tags["data_digest"]
    assert version.tags["validation_status"] == "passed"
    assert version.tags["git_commit"] == repo["commits"][1]


def test_parent_records_metrics_and_the_summary_says_how_to_serve(pipeline):
    parent, validate = pipeline["parent"], pipeline["children"]["validate"]
    assert parent.data.metrics["test_f1"] == validate.data.metrics["test_f1"] >= 0.7
    assert parent.data.metrics["baseline_f1"] == validate.data.metrics["baseline_f1"] >= 0.9
    assert 0.9 <= validate.data.metrics["baseline_accuracy"] <= 1
    assert validate.data.metrics["test_f1_score"] == validate.data.metrics["test_f1"] == \
        validate.data.metrics["test_f1_spam"]  # MLflow's name and ours: spam's F1
    assert {f"{prefix}_{name}_{label}" for prefix in ("test", "baseline") for name in ("precision", "recall", "f1")
            for label in ("ham", "spam")} <= set(validate.data.metrics)
    assert parent.data.tags["registered_model_uri"] == "models:/spam-classifier/1"
    out = pipeline["result"].stdout
    assert "models:/spam-classifier/1 is @candidate; @champion is version 1" in out
    assert "Pipeline finished:" in out and "mlflow models serve -m models:/spam-classifier@champion" in out
    said = out + pipeline["result"].stderr
    assert not any(warning in said for warning in ("model card could not be retrieved", "license information",
                                                   "will override the inference configuration"))
    artifacts = {a.path for a in MlflowClient().list_artifacts(validate.info.run_id)}
    assert {"test_confusion_matrix.png", "baseline_confusion_matrix.png", "misclassified.json",
            "behaviour_checks.json"} <= artifacts


def test_validate_logs_check_pass_rates_per_capability_and_the_table(pipeline, client):
    validate = pipeline["children"]["validate"]
    rates = {key: value for key, value in validate.data.metrics.items() if key.startswith("checks_pass_rate")}
    assert set(rates) == {"checks_pass_rate", "checks_pass_rate_prize_spam", "checks_pass_rate_plans_ham"}
    assert rates["checks_pass_rate"] == (rates["checks_pass_rate_prize_spam"] + rates["checks_pass_rate_plans_ham"]) / 2
    logged = json.loads(Path(client.download_artifacts(validate.info.run_id, "behaviour_checks.json")).read_text())
    table = pd.DataFrame(logged["data"], columns=logged["columns"])
    assert list(table.columns) == ["text", "capability", "expected", "predicted", "passed", "score_ham", "score_spam"]
    assert len(table) == 6 and table["passed"].mean() == rates["checks_pass_rate"] >= 0.9


def test_champion_loads_through_pyfunc_and_says_ham_or_spam(pipeline):
    model = mlflow.pyfunc.load_model("models:/spam-classifier@champion")
    predictions = model.predict(["Are we still on for lunch tomorrow, John?",
                                 "WINNER! Click HERE to claim your FREE cash prize now!"])
    assert predictions["label"].tolist() == ["ham", "spam"]


def test_identical_rerun_reuses_every_step(pipeline, run_project, client, uci_file, tiny_model, tiny_checks):
    first = pipeline["parent"]
    started = time.time()
    result = run_project(*tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode == 0, result.stderr[-3000:]
    second = main_runs(client)[-1]
    original = pipeline["children"]
    assert children(client, second) == {}  # nothing ran again
    for step in STEPS:
        assert second.data.tags[f"{step}_reused"] == "true"
        assert second.data.tags[f"{step}_run_id"] == original[step].info.run_id
    assert "(reused)" in result.stdout and second.data.metrics["test_f1"] == first.data.metrics["test_f1"]
    assert time.time() - started < 60


def test_two_mains_with_changed_training_at_once_rerun_from_train_and_champion_ends_on_the_better(
        pipeline, run_project, client, uci_file, tiny_model, tiny_checks):
    # Each reuses the first pipeline's prepare and tokenize (same data, same commit) and trains,
    # registers and validates its own; a new model name keeps the first's versions as they are. The
    # thresholds are off (a short training may leave the tiny model unlearned): promotion is tested.
    gate_off = {"min_accuracy": 0, "min_f1": 0, "min_check_pass_rate": 0}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda epochs: run_project("--run-name", f"race {epochs}", *tiny_params(
            uci_file, tiny_model, tiny_checks, epochs=epochs, registered_model_name="race", **gate_off)), (4, 6)))
    parents = main_runs(client, "attributes.run_name LIKE 'race %'")
    assert len(parents) == 2, [result.stderr[-2000:] for result in results]
    first = pipeline["children"]
    verdicts = {}
    for parent, result in zip(sorted(parents, key=lambda run: run.info.run_name), results):  # epochs' order
        assert [parent.data.tags[f"{step}_reused"] for step in STEPS] == ["true", "true", "false", "false", "false"]
        assert [parent.data.tags[f"{step}_run_id"] for step in ("prepare", "tokenize")] == \
            [first[step].info.run_id for step in ("prepare", "tokenize")]
        steps = children(client, parent)
        assert sorted(steps) == ["register", "train", "validate"]
        version = client.get_model_version("race", steps["register"].data.tags["output_uri"].split("/")[-1])
        assert version.tags["train_run_id"] == steps["train"].info.run_id  # its own chain, not the other's
        assert steps["validate"].data.params["model_uri"] == f"models:/race/{version.version}"
        # The later validation may be refused for scoring below the champion on its split; nothing else fails.
        assert result.returncode == 0 or "< champion (version" in error_line(result), result.stderr[-3000:]
        verdicts[version.version] = version.tags
    passed = {(float(tags["test_f1"]), int(number)) for number, tags in verdicts.items()
              if tags["validation_status"] == "passed"}
    assert passed, verdicts
    assert int(client.get_model_version_by_alias("race", "champion").version) == max(passed)[1]


def test_reproduce_gives_the_same_metrics_and_leaves_the_registry_as_it_was(pipeline, run_project, repo, client):
    first = pipeline["parent"]

    def registry():
        return ({model.name: dict(model.aliases) for model in client.search_registered_models()},
                sorted((v.name, v.version) for v in client.search_model_versions()))

    before = registry()
    result = run_project("-e", "reproduce", "-P", f"run_id={first.info.run_id}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert registry() == before  # no alias moved, no version left behind
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [reproduce] = client.search_runs([experiment.experiment_id], "tags.`mlflow.project.entryPoint` = 'reproduce'")
    new = client.get_run(reproduce.data.tags["reproduction_run_id"])
    assert new.data.tags["mlflow.parentRunId"] == reproduce.info.run_id
    assert new.data.tags["mlflow.source.git.commit"] == repo["commits"][1]
    assert sorted(children(client, new)) == sorted(STEPS)  # run again, not reused
    for name, value in first.data.metrics.items():
        if name.startswith("test_"):
            assert new.data.metrics[name] == value
            assert reproduce.data.metrics[f"difference_{name}"] == 0
    assert f"reproduced as {new.info.run_id}" in result.stdout


def validate_version(run_project, pipeline, version, checks, **gate):
    return run_project("-e", "validate", *params(
        model_uri=f"models:/spam-classifier/{version}", checks=checks, min_accuracy=0.5, min_f1=0.5,
        **{"min_margin_over_baseline": -1, **gate},
        test_data=pipeline["children"]["prepare"].data.tags["output_uri"] + "/test.parquet"))


def test_failed_checks_reject_the_version_and_leave_the_champion(pipeline, run_project, client, tmp_path):
    checkpoint = pipeline["children"]["train"].data.tags["output_uri"]
    result = run_project("-e", "register", *params(checkpoint=checkpoint))
    assert result.returncode == 0, result.stderr[-2000:]
    assert str(client.get_model_version_by_alias("spam-classifier", "candidate").version) == "2"

    wrong = tmp_path / "wrong.csv"  # no capability column: one group
    wrong.write_text("text,label\nAre we still on for lunch tomorrow?,spam\nWINNER! Click HERE for a FREE car,spam\n")
    result = validate_version(run_project, pipeline, 2, wrong, min_check_pass_rate=0.6)
    assert result.returncode != 0
    assert error_line(result) == ("Error: spam-classifier version 2 not promoted: behaviour checks passed 1/2 (50.0%) "
                                  "< min_check_pass_rate 0.6; failed: 'Are we still on for lunch tomorrow?...' "
                                  "(all, expected spam); champion stays at version 1")
    assert str(client.get_model_version_by_alias("spam-classifier", "champion").version) == "1"
    version = client.get_model_version("spam-classifier", "2")
    assert version.tags["validation_status"] == "rejected"
    assert "min_check_pass_rate 0.6" in version.tags["rejection_reason"]


def test_a_version_below_the_baseline_is_rejected(pipeline, run_project, client, tiny_checks):
    # The champion itself, validated again under a stricter gate: rejected, and still the champion.
    champion = client.get_model_version_by_alias("spam-classifier", "champion").version
    assert champion == "1"
    result = validate_version(run_project, pipeline, 1, tiny_checks, min_margin_over_baseline=0.5)  # F1 above 1: never
    assert result.returncode != 0
    assert re.fullmatch(r"Error: spam-classifier version 1 not promoted: test spam F1 \d\.\d{4} < baseline "
                        r"\(TF-IDF \+ linear SVM\) F1 \d\.\d{4} \+ min_margin_over_baseline 0\.5; "
                        r"champion stays at version 1", error_line(result)), error_line(result)
    assert client.get_model_version_by_alias("spam-classifier", "champion").version == champion


def test_a_champion_of_another_split_is_compared_on_the_test_texts_it_did_not_train_on(
        pipeline, client, uci_file, tiny_checks, tmp_path):
    # Version 1 (the champion) trained on seed 22's split; seed 23 draws another, most of whose test
    # texts it trained or was validated on. A new version of the same checkpoint is compared with
    # it on the rest only, where both answer alike; the margin rule refuses it, so nothing moves.
    first = pipeline["children"]
    other = output_of(prepare.main, "--dataset", uci_file, "--seed", 23)
    version = output_of(register.main, "--checkpoint", first["train"].data.tags["output_uri"]).rsplit("/", 1)[1]
    gate = ["--checks", tiny_checks, "--min-accuracy", 0.5, "--min-f1", 0.5, "--min-margin-over-baseline", 0.5]
    result = CliRunner().invoke(validate.main, ["--model-uri", f"models:/spam-classifier/{version}",
                                                "--test-data", f"{other}/test.parquet", *map(str, gate)])
    assert result.exit_code != 0 and "< champion" not in result.output, result.output
    seen = pd.concat(pd.read_parquet(mlflow.artifacts.download_artifacts(f"{first['prepare'].data.tags['output_uri']}"
                                                                         f"/{split}.parquet"))
                     for split in ("train", "validation"))
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(f"{other}/test.parquet"))
    unseen = int((~test["text"].isin(seen["text"])).sum())
    assert 0 < unseen < len(test)
    scores = mlflow.last_active_run().data.metrics  # validate's, in this process
    assert scores["champion_rows"] == unseen
    assert scores["beside_champion_f1"] == scores["champion_f1"]  # the same weights on the same texts
    assert re.search(rf"champion version 1 F1 [\d.]+ on the {unseen} test rows it did not train on \(this version",
                     result.output)
    assert str(client.get_model_version_by_alias("spam-classifier", "champion").version) == "1"

    # Data the champion trained on, split again: every test text seen, so no comparison is fair.
    seen_file = write_uci(tmp_path / "seen.tsv", [(("ham", "spam")[label], text) for label, text
                                                 in zip(seen["label"], seen["text"])])
    again = output_of(prepare.main, "--dataset", seen_file, "--seed", 23)
    result = CliRunner().invoke(validate.main, ["--model-uri", f"models:/spam-classifier/{version}",
                                                "--test-data", f"{again}/test.parquet", *map(str, gate)])
    assert_one_line_error(result, f"Error: spam-classifier version {version} not promoted: the champion (version 1) "
                          "trained on every text of this test split, so the two cannot be compared fairly: validate "
                          "on a split the champion did not train on; champion stays at version 1")
    assert client.get_model_version("spam-classifier", version).tags["validation_status"] == "rejected"
    assert str(client.get_model_version_by_alias("spam-classifier", "champion").version) == "1"


@pytest.mark.parametrize("bad, failing_step, fragment", [
    ({"dataset": "/nonexistent/sms.csv"}, "prepare", "data file /nonexistent/sms.csv does not exist"),
    ({"model": "distilbert/distilbert-base-uncased"}, "tokenize", "pass a local path instead"),
])
def test_bad_input_fails_the_step_and_the_parent_and_registers_nothing(
        pipeline, run_project, client, uci_file, tiny_model, tiny_checks, bad, failing_step, fragment):
    versions_before = len(client.search_model_versions("name='spam-classifier'"))
    result = run_project(*tiny_params(uci_file, tiny_model, tiny_checks, use_cache="false", **bad),
                        "--run-name", f"bad-{failing_step}")
    assert result.returncode != 0
    assert error_line(result).startswith(f"Error: step {failing_step} failed (run ") and fragment in error_line(result)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    [parent] = client.search_runs([experiment.experiment_id], f"attributes.run_name = 'bad-{failing_step}'")
    ran = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert parent.info.status == "FAILED"
    assert [c.data.tags["mlflow.project.entryPoint"] for c in ran] == STEPS[:STEPS.index(failing_step) + 1][::-1]
    assert {c.data.tags["mlflow.project.entryPoint"]: c.info.status for c in ran}[failing_step] == "FAILED"
    assert len(client.search_model_versions("name='spam-classifier'")) == versions_before


def test_commit_that_does_not_exist(pipeline, server, run_project, repo, client, uci_file, tiny_model, tiny_checks):
    first = pipeline["parent"]
    missing = "0" * 40
    fake = client.create_run(first.info.experiment_id, tags={
        "mlflow.project.entryPoint": "main", "mlflow.source.name": repo["url"], "mlflow.source.git.commit": missing})
    client.set_terminated(fake.info.run_id, "FINISHED")
    result = run_with_tracking(server, PROJECT_DIR, sys.executable, "-m", "steps.reproduce",
                               "--run-id", fake.info.run_id)
    assert result.returncode == 1
    assert error_line(result) == (f"Error: commit {missing} does not exist in {repo['url']}: "
                                  "was it pushed, or the history rewritten?")
    result = run_project("--version", missing, *tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode != 0 and missing in result.stderr


def test_unreachable_server_is_one_line_naming_the_uri():
    uri = f"http://127.0.0.1:{free_port()}"
    for command in (["steps.reproduce", "--run-id", "0" * 32], ["steps.prepare", "--dataset", "x.csv"]):
        result = run_with_tracking(uri, PROJECT_DIR, sys.executable, "-m", *command)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(f"Error: cannot reach the MLflow tracking server at {uri} (")
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_reproduce_of_a_run_that_does_not_exist(server):
    result = run_with_tracking(server, PROJECT_DIR, sys.executable, "-m", "steps.reproduce",
                               "--run-id", "0123456789abcdef0123456789abcdef")
    assert result.returncode == 1
    assert error_line(result).startswith("Error: no run 0123456789abcdef0123456789abcdef at " + server)
