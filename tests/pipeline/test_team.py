"""The team setup on loopback: runs in PostgreSQL, artifacts in S3 (moto), and `mlflow server
--app-name basic-auth` in front, in its two artifact modes. Direct (the steps write to S3
themselves): the pipeline from the git URL, its first `main` in an isolated environment built from
conda.yaml, reuse on a rerun, the champion served from the store, a search of everything stored
for the test's secrets, and a wrong or missing password refused. Proxied (artifacts through the
server, the steps without S3's settings): prepare, then tokenize reading prepare's artifacts back
through the proxy, and a wrong password refused. Reproduce: test_pipeline."""

import contextlib
import re
import sys
import time
from pathlib import Path

import click
import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from steps.plumbing import contract, tracking
from tests.helpers import (ADMIN, BUCKET, PROJECT_DIR, STEPS, background, children, free_port, mlflow_run, need,
                           params, run_with_tracking, s3_objects, team_server, tiny_params)

pytestmark = pytest.mark.slow

EXPERIMENT = "team"


@contextlib.contextmanager
def team(tmp_path_factory, postgres, s3, artifacts: str):
    """A team server in one artifact mode, and what its tests need to reach and search it."""
    folder = tmp_path_factory.mktemp(f"team-{artifacts}")
    with team_server(folder, postgres, s3, artifacts) as (uri, password, backend_store):
        yield {"uri": uri, "artifacts": artifacts, "password": password, "backend_store": backend_store,
               "client": MlflowClient(uri), "s3": s3,
               "secrets": [password, s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"]],
               "workdir": tmp_path_factory.mktemp(f"elsewhere-{artifacts}")}


def sign_in(patch: pytest.MonkeyPatch, team: dict, password: str | None = None):
    """`team`'s server for this process and the commands it starts: its URI (by environment, not
    mlflow.set_tracking_uri, so that a test's monkeypatch can point elsewhere on top), the
    credentials, and S3's settings only when the steps write to S3 themselves."""
    patch.setenv("MLFLOW_TRACKING_URI", team["uri"])
    patch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    patch.setenv("MLFLOW_TRACKING_PASSWORD", password or team["password"])
    for name, value in team["s3"].items():
        if team["artifacts"] == "direct":
            patch.setenv(name, value)
        else:  # proxied: no way into S3 but through the server
            patch.delenv(name, raising=False)


def runs_of(team, entry_point):
    client = team["client"]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], f"tags.`mlflow.project.entryPoint` = '{entry_point}'",
                              order_by=["attributes.start_time ASC"]) if experiment else []


def refusal(team) -> str:
    return (f"the MLflow tracking server at {team['uri']} refused the credentials (HTTP 401): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account it knows")


# Direct: the whole pipeline.

@pytest.fixture(scope="module")
def direct(tmp_path_factory, postgres, s3):
    """Signed in for the whole module: every direct test talks to this server."""
    with team(tmp_path_factory, postgres, s3, "direct") as server, pytest.MonkeyPatch.context() as patch:
        sign_in(patch, server)
        yield server


@pytest.fixture(scope="module")
def first(direct, repo, uci_file, tiny_model, tiny_checks):
    """`main` from the git URL in a virtualenv built from conda.yaml, as on a team member's fresh
    machine (boto3, which writes to S3, comes only from there)."""
    result = run_with_tracking(direct["uri"], direct["workdir"], sys.executable, "-m", "mlflow", "run", repo["url"],
                               "--env-manager", "virtualenv", "--experiment-name", EXPERIMENT,
                               *tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [parent] = runs_of(direct, "main")
    return parent


@pytest.fixture(scope="module")
def rerun(first, direct, repo, uci_file, tiny_model, tiny_checks):
    started = time.time()
    result = mlflow_run(direct["uri"], direct["workdir"], repo["url"], EXPERIMENT,
                        *tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"parent": runs_of(direct, "main")[-1], "seconds": time.time() - started}


def test_pipeline_keeps_runs_in_postgres_and_artifacts_in_s3(direct, first):
    steps = children(direct["client"], first)
    assert sorted(steps) == sorted(STEPS) and all(r.info.status == "FINISHED" for r in steps.values())
    with need("psycopg").connect(direct["backend_store"]) as connection:
        statuses = connection.execute("SELECT status FROM runs WHERE run_uuid = %s", (first.info.run_id,)).fetchall()
    assert statuses == [("FINISHED",)]
    assert all(r.info.artifact_uri.startswith(f"s3://{BUCKET}/direct/") for r in [first, *steps.values()])
    train_id = steps["train"].info.run_id
    stored = s3_objects(direct["s3"], "direct/")
    assert any(key.endswith(f"{train_id}/artifacts/checkpoint/model.safetensors") for key in stored), stored[:20]


def test_main_ran_in_a_virtualenv_built_from_conda_yaml(direct, first):
    assert first.data.tags.get("mlflow.project.env") == "virtualenv"
    train = children(direct["client"], first)["train"]
    versions = Path(direct["client"].download_artifacts(train.info.run_id, "environment/versions.txt")).read_text()
    assert "boto3==1.43.11" in versions and "torch==2.13.0" in versions
    assert "moto==" not in versions  # a test-only package, in this process's environment but not conda.yaml's


def test_identical_rerun_reuses_every_step(direct, first, rerun):
    parent = rerun["parent"]
    original = children(direct["client"], first)
    assert children(direct["client"], parent) == {}
    assert {step: parent.data.tags[f"{step}_run_id"] for step in STEPS} == \
        {step: run.info.run_id for step, run in original.items()}
    assert rerun["seconds"] < 60


def test_champion_is_served_from_the_store(direct, first):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/spam-classifier@champion",
             "--env-manager", "local", "--host", "127.0.0.1", "-p", port]
    with background(serve, direct["workdir"], "model server", lambda: requests.get(f"{url}/ping", timeout=2).ok):
        response = requests.post(f"{url}/invocations", timeout=60, json={"inputs": [
            "Are we still on for lunch tomorrow, John?", "WINNER! Click HERE to claim your FREE cash prize now!"]})
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == ["ham", "spam"]


def file_texts(folder: str, where: str):
    """(where/path, content) of every file under `folder`; bytes read as latin-1 so that binary
    files are searched too."""
    return [(f"{where} {path.relative_to(folder).as_posix()}", path.read_bytes().decode("latin-1"))
            for path in Path(folder).rglob("*") if path.is_file()]


def stored_texts(team, destination: Path):
    """(where, text) for every param, tag and artifact of every run of the experiment, every
    logged model's files, and every registered version's tags."""
    client = team["client"]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    texts = []
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        texts += [(f"run {run.info.run_id} {kind} {key}", f"{key}={value}")
                  for kind, values in (("param", run.data.params), ("tag", run.data.tags))
                  for key, value in values.items()]
        folder = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, dst_path=destination / run.info.run_id)
        texts += file_texts(folder, f"run {run.info.run_id} artifact")
    for model in client.search_logged_models([experiment.experiment_id]):
        folder = mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location,
                                                     dst_path=destination / model.model_id)
        texts += file_texts(folder, f"logged model {model.model_id}")
    texts += [(f"model version {v.name}/{v.version}", repr(v.tags)) for v in client.search_model_versions()]
    return texts


def test_no_secret_lands_in_the_store(direct, first, rerun, tmp_path):
    texts = stored_texts(direct, tmp_path)
    assert [where for where, text in texts for secret in direct["secrets"] if secret in text] == []
    # Searched for real: the pipeline and its rerun are seven runs with records.
    assert sum(where.endswith(" artifact environment/versions.txt") for where, _ in texts) >= 7
    assert any(where.startswith("logged model ") for where, _ in texts)


def test_wrong_password_stops_main_before_any_step_in_one_line(direct, monkeypatch, uci_file, tiny_model):
    runs_before = len(runs_of(direct, "main"))
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    started = time.time()
    with pytest.raises(click.ClickException, match=re.escape(refusal(direct))):
        tracking.check_tracking_server()
    assert time.time() - started < 15  # MLflow does not retry a 401

    result = run_with_tracking(direct["uri"], PROJECT_DIR, sys.executable, "-m", "steps.main",
                               "--dataset", uci_file, "--model", tiny_model)
    assert result.returncode == 1 and result.stderr.splitlines() == [f"Error: {refusal(direct)}"]
    # `mlflow run` itself asks the server before main starts: it is refused there, at once, in
    # MLflow's own words.
    result = mlflow_run(direct["uri"], direct["workdir"], PROJECT_DIR, EXPERIMENT,
                        *params(dataset=uci_file, model=tiny_model))
    assert result.returncode == 1 and "failed with error code 401" in result.stderr.splitlines()[-1]
    monkeypatch.undo()
    assert len(runs_of(direct, "main")) == runs_before


def test_missing_credentials_are_refused_too(direct, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(click.ClickException, match=re.escape(refusal(direct))):
        tracking.check_tracking_server()


# Proxied: two steps, the second reading the first's artifacts back through the server. What main
# adds (the parent, reuse, registering, serving) is tested in the direct mode: the steps hand each
# other runs:/ URIs in either.

@pytest.fixture(scope="module")
def proxied(tmp_path_factory, postgres, s3, repo, uci_file, tiny_model):
    """prepare, then tokenize on prepare's output URI, from the git URL through the proxying server.
    Signed in only while they run: the direct tests' sign-in, when the module holds it, is back after."""
    with team(tmp_path_factory, postgres, s3, "proxied") as server:
        with pytest.MonkeyPatch.context() as patch:
            sign_in(patch, server)
            result = mlflow_run(server["uri"], server["workdir"], repo["url"], EXPERIMENT, "-e", "prepare",
                                *params(dataset=uci_file))
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            [prepare] = runs_of(server, "prepare")
            result = mlflow_run(server["uri"], server["workdir"], repo["url"], EXPERIMENT, "-e", "tokenize",
                                *params(data=prepare.data.tags[contract.OUTPUT_TAG], model=tiny_model))
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            [tokenize] = runs_of(server, "tokenize")
        yield {**server, "prepare": prepare, "tokenize": tokenize}


def test_proxied_steps_keep_runs_in_postgres_and_artifacts_in_s3_through_the_server(proxied):
    prepare, tokenize = proxied["prepare"], proxied["tokenize"]
    assert [prepare.info.status, tokenize.info.status] == ["FINISHED", "FINISHED"]
    with need("psycopg").connect(proxied["backend_store"]) as connection:
        stored_runs = connection.execute("SELECT run_uuid, status FROM runs").fetchall()
    assert sorted(stored_runs) == sorted([(prepare.info.run_id, "FINISHED"), (tokenize.info.run_id, "FINISHED")])
    assert all(r.info.artifact_uri.startswith("mlflow-artifacts:/") for r in [prepare, tokenize])
    # tokenize read prepare's output through the proxy: it was given prepare's URI, and its own
    # artifacts hold the task.json that only prepare's carry.
    assert tokenize.data.params["data"] == prepare.data.tags[contract.OUTPUT_TAG] == \
        f"runs:/{prepare.info.run_id}/data"
    assert tokenize.data.tags[contract.OUTPUT_TAG] == f"runs:/{tokenize.info.run_id}/tokenized"
    stored = s3_objects(proxied["s3"], "proxied/")
    for expected in (f"{prepare.info.run_id}/artifacts/data/train.parquet",
                     f"{tokenize.info.run_id}/artifacts/tokenized/task.json"):
        assert any(key.endswith(expected) for key in stored), stored[:20]


def test_proxied_server_refuses_a_wrong_password(proxied, monkeypatch):
    sign_in(monkeypatch, proxied, password="wrong")
    with pytest.raises(click.ClickException, match=re.escape(refusal(proxied))):
        tracking.check_tracking_server()
