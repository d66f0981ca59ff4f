"""The team setup on loopback: runs in PostgreSQL, artifacts in S3 (moto), and `mlflow server
--app-name basic-auth` in front, with artifacts proxied through the server ("proxied") or
written to S3 by the steps themselves ("direct", from an isolated environment built from
conda.yaml). The pipeline, reuse and serving through it (reproduce: test_remote); a refused password; and
a search of everything the pipeline stored for the test's secrets."""

import re
import sys
import time
from pathlib import Path

import click
import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from steps.shared import tracking
from tests.conftest import PROJECT_DIR, STEPS, run_with_tracking, tiny_params
from tests.servers import postgres, repo, s3  # noqa: F401 (fixtures)
from tests.servers import ADMIN, BUCKET, background, free_port, need, s3_objects, team_server

pytestmark = pytest.mark.slow

EXPERIMENT = "team"


@pytest.fixture(scope="module", params=["proxied", "direct"])
def team(request, tmp_path_factory, postgres, s3):
    """One server per artifact mode; the steps get the credentials, and S3's settings only when
    they write to S3 themselves."""
    artifacts = request.param
    folder = tmp_path_factory.mktemp(f"team-{artifacts}")
    with team_server(folder, postgres, s3, artifacts) as (uri, password, backend_store):
        env = {"MLFLOW_TRACKING_USERNAME": ADMIN, "MLFLOW_TRACKING_PASSWORD": password,
               **(s3 if artifacts == "direct" else {})}
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            mlflow.set_tracking_uri(uri)
            yield {"uri": uri, "artifacts": artifacts, "backend_store": backend_store, "client": MlflowClient(uri),
                   "s3": s3,
                   "secrets": [password, s3["AWS_ACCESS_KEY_ID"], s3["AWS_SECRET_ACCESS_KEY"]],
                   "workdir": tmp_path_factory.mktemp(f"elsewhere-{artifacts}")}
            mlflow.set_tracking_uri(None)


def mlflow_run(team, project, *args, env_manager="local"):
    return run_with_tracking(team["uri"], team["workdir"], sys.executable, "-m", "mlflow", "run", project,
                             "--env-manager", env_manager, "--experiment-name", EXPERIMENT, *args)


def runs_of(team, entry_point):
    client = team["client"]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], f"tags.`mlflow.project.entryPoint` = '{entry_point}'",
                              order_by=["attributes.start_time ASC"]) if experiment else []


def children(team, parent):
    runs = team["client"].search_runs([parent.info.experiment_id],
                                      f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    return {r.data.tags["mlflow.project.entryPoint"]: r for r in runs}


@pytest.fixture(scope="module")
def first(team, repo, uci_file, tiny_model, tiny_checks):
    """`main` from the git URL. Direct: in a virtualenv built from conda.yaml, as on a team
    member's fresh machine (boto3, which writes to S3, comes only from there)."""
    env_manager = "virtualenv" if team["artifacts"] == "direct" else "local"
    result = mlflow_run(team, repo["url"], *tiny_params(uci_file, tiny_model, tiny_checks), env_manager=env_manager)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    [parent] = runs_of(team, "main")
    return parent


@pytest.fixture(scope="module")
def rerun(first, team, repo, uci_file, tiny_model, tiny_checks):
    started = time.time()
    result = mlflow_run(team, repo["url"], *tiny_params(uci_file, tiny_model, tiny_checks))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {"parent": runs_of(team, "main")[-1], "seconds": time.time() - started}


def test_pipeline_keeps_runs_in_postgres_and_artifacts_in_s3(team, first):
    steps = children(team, first)
    assert sorted(steps) == sorted(STEPS) and all(r.info.status == "FINISHED" for r in steps.values())
    with need("psycopg").connect(team["backend_store"]) as connection:
        statuses = connection.execute("SELECT status FROM runs WHERE run_uuid = %s", (first.info.run_id,)).fetchall()
    assert statuses == [("FINISHED",)]
    expected_root = "mlflow-artifacts:/" if team["artifacts"] == "proxied" else f"s3://{BUCKET}/direct/"
    assert all(r.info.artifact_uri.startswith(expected_root) for r in [first, *steps.values()])
    train_id = steps["train"].info.run_id
    stored = s3_objects(team["s3"], f"{team['artifacts']}/")
    assert any(key.endswith(f"{train_id}/artifacts/checkpoint/model.safetensors") for key in stored), stored[:20]


def test_direct_mode_ran_in_a_virtualenv_built_from_conda_yaml_proxied_mode_locally(team, first):
    isolated = team["artifacts"] == "direct"
    assert first.data.tags.get("mlflow.project.env") == ("virtualenv" if isolated else None)  # local: no tag
    train = children(team, first)["train"]
    versions = Path(team["client"].download_artifacts(train.info.run_id, "environment/versions.txt")).read_text()
    assert "boto3==1.43.11" in versions and "torch==2.13.0" in versions
    assert ("moto==" in versions) != isolated  # a test-only package: absent from conda.yaml's environment


def test_identical_rerun_reuses_every_step(team, first, rerun):
    parent = rerun["parent"]
    original = children(team, first)
    assert children(team, parent) == {}
    assert {step: parent.data.tags[f"{step}_run_id"] for step in STEPS} == \
        {step: run.info.run_id for step, run in original.items()}
    assert rerun["seconds"] < 60


def test_champion_is_served_from_the_store(team, first):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/spam-classifier@champion",
             "--env-manager", "local", "--host", "127.0.0.1", "-p", port]
    with background(serve, team["workdir"], "model server", lambda: requests.get(f"{url}/ping", timeout=2).ok,
                    env={"MLFLOW_TRACKING_URI": team["uri"]}):
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


def test_no_secret_lands_in_the_store(team, first, rerun, tmp_path):
    texts = stored_texts(team, tmp_path)
    assert [where for where, text in texts for secret in team["secrets"] if secret in text] == []
    # Searched for real: the pipeline and its rerun are seven runs with records.
    assert sum(where.endswith(" artifact environment/versions.txt") for where, _ in texts) >= 7
    assert any(where.startswith("logged model ") for where, _ in texts)


def refusal(team) -> str:
    return (f"the MLflow tracking server at {team['uri']} refused the credentials (HTTP 401): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account it knows")


def test_wrong_password_stops_main_before_any_step_in_one_line(team, monkeypatch, uci_file, tiny_model):
    runs_before = len(runs_of(team, "main"))
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    started = time.time()
    with pytest.raises(click.ClickException, match=re.escape(refusal(team))):
        tracking.check_tracking_server()
    assert time.time() - started < 15  # MLflow does not retry a 401

    result = run_with_tracking(team["uri"], PROJECT_DIR, sys.executable, "-m", "steps.main",
                               "--dataset", uci_file, "--model", tiny_model)
    assert result.returncode == 1 and result.stderr.splitlines() == [f"Error: {refusal(team)}"]
    # `mlflow run` itself asks the server before main starts: it is refused there, at once, in
    # MLflow's own words.
    result = mlflow_run(team, PROJECT_DIR, "-P", f"dataset={uci_file}", "-P", f"model={tiny_model}")
    assert result.returncode == 1 and "failed with error code 401" in result.stderr.splitlines()[-1]
    monkeypatch.undo()
    assert len(runs_of(team, "main")) == runs_before


def test_missing_credentials_are_refused_too(team, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    with pytest.raises(click.ClickException, match=re.escape(refusal(team))):
        tracking.check_tracking_server()
