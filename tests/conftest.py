"""The tests' fixtures (their helpers: tests/helpers.py) and the process set-up every test needs."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tests.helpers import (BUCKET, GIT, PROJECT_DIR, TINY_CHECKS, answers, as_database_owner, background,
                           build_tiny_bert, free_port, messages, mlflow_server, need, output_of, postgres_bin,
                           tickets, write_uci)

# Nothing here may reach the Hub: fail at once instead of retrying a network that is not there.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# MLflow's telemetry thread, finding no network, removes its session variable from os.environ; a
# request iterating os.environ at that moment (requests' proxy lookup) fails with KeyError
# '_MLFLOW_TELEMETRY_SESSION_ID' (seen once in a full run). Nothing here can send telemetry anyway.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# train's system metrics: a sample a second, so that the tests' short trainings log some
os.environ["MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL"] = "1"
# pytest-xdist's workers run under a __main__ with neither __spec__ nor __file__, which pyspark
# (imported by MLflow's signature inference) takes for its doctest runner, and exits.
if getattr(sys.modules["__main__"], "__spec__", None) is None and not hasattr(sys.modules["__main__"], "__file__"):
    sys.modules["__main__"].__file__ = "pytest-xdist worker"


@pytest.fixture(scope="session")
def sms_rows():
    return messages()


@pytest.fixture(scope="session")
def uci_file(tmp_path_factory, sms_rows):
    return write_uci(tmp_path_factory.mktemp("data") / "SMSSpamCollection", sms_rows)


@pytest.fixture(scope="session")
def tiny_checks(tmp_path_factory):
    path = tmp_path_factory.mktemp("checks") / "tiny_checks.csv"
    path.write_text(TINY_CHECKS)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, sms_rows):
    return build_tiny_bert(tmp_path_factory.mktemp("model") / "tiny-bert", [text for _, text in sms_rows])


@pytest.fixture(scope="session")
def ticket_rows():
    return tickets()


@pytest.fixture(scope="session")
def ticket_file(tmp_path_factory, ticket_rows):
    """Three kinds of support ticket as CSV: an id, the text, and the label in a column named `kind`."""
    path = tmp_path_factory.mktemp("tickets") / "tickets.csv"
    pd.DataFrame({"id": range(len(ticket_rows)), "body": [text for _, text in ticket_rows],
                  "kind": [label for label, _ in ticket_rows]}).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def ticket_model(tmp_path_factory, ticket_rows):
    return build_tiny_bert(tmp_path_factory.mktemp("model") / "tiny-ticket-bert", [text for _, text in ticket_rows])


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory):
    """An sqlite store with MLflow's tables made: building them takes seconds, copying it none."""
    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking(tmp_path, monkeypatch, empty_store):
    """A fresh sqlite store and artifact root in a temporary folder, for in-process runs."""
    monkeypatch.chdir(tmp_path)  # the default artifact root, ./mlruns, lands here
    shutil.copy(empty_store, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("tests")
    yield mlflow.MlflowClient()
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)  # set_experiment exports it; later `mlflow run`s must not inherit it


@pytest.fixture
def tokenized(tracking, uci_file, tiny_model):
    """The tokenize step's output URI for the fixture messages, in the `tracking` store."""
    from steps import prepare, tokenize

    data = output_of(prepare.main, "--dataset", uci_file)
    return output_of(tokenize.main, "--data", data, "--model", tiny_model, "--max-length", 32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` with sqlite behind it, artifacts proxied into a temp folder."""
    folder = tmp_path_factory.mktemp("server")
    uri, running = mlflow_server(folder, "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                                 "--artifacts-destination", folder / "artifacts")
    with running:
        yield uri


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster of its own (initdb, pg_ctl) on a free loopback port; yields a function
    that creates a database and returns its URI."""
    psycopg = need("psycopg")
    binaries = postgres_bin()
    folder = Path(tempfile.mkdtemp(prefix="postgres-"))  # not under pytest's root-only temp folder
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(as_database_owner([binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust",
                                      "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    # -F: no fsync, the cluster is thrown away; -k: its socket in its own folder, not /var/run.
    subprocess.run(as_database_owner([binaries / "pg_ctl", "-D", data, "-l", folder / "postgres.log", "-w", "-o",
                                      f"-h 127.0.0.1 -p {port} -k {folder} -F", "start"]), check=True,
                   capture_output=True)
    base = f"postgresql://postgres@127.0.0.1:{port}"

    def create_database(name: str) -> str:
        # autocommit: CREATE DATABASE cannot run in a transaction
        with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"{base}/{name}"

    yield create_database
    subprocess.run(as_database_owner([binaries / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop"]), check=True,
                   capture_output=True)
    shutil.rmtree(folder)


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """moto's S3 server on a free loopback port with one bucket; yields the environment a client of
    it needs (endpoint and keys: moto accepts any, distinctive ones let the tests search for them)."""
    boto3 = need("boto3")
    need("moto.server")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": f"AKIATEST{os.urandom(6).hex().upper()}",
           "AWS_SECRET_ACCESS_KEY": f"test-secret-{os.urandom(12).hex()}", "AWS_DEFAULT_REGION": "us-east-1"}
    with background([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
                    tmp_path_factory.mktemp("s3"), "moto server", lambda: answers(f"{endpoint}/moto-api/")):
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                     aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                     region_name=env["AWS_DEFAULT_REGION"]).create_bucket(Bucket=BUCKET)
        yield env


@pytest.fixture(scope="session")
def repo(tmp_path_factory):
    """The project (as it is in this checkout) committed twice and served by `git daemon`."""
    base = tmp_path_factory.mktemp("git")
    work = base / "work"
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT_DIR,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (PROJECT_DIR / name).is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(PROJECT_DIR / name, work / name)
    subprocess.run(GIT + ["init", "-q", "-b", "main"], cwd=work, check=True)
    commits = []
    for message in ("first", "second"):
        if commits:
            (work / "README.md").write_text((work / "README.md").read_text() + "\nA later commit.\n")
        subprocess.run(GIT + ["add", "-A"], cwd=work, check=True)
        subprocess.run(GIT + ["commit", "-q", "-m", message], cwd=work, check=True)
        commits.append(subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, capture_output=True, text=True,
                                      check=True).stdout.strip())
    served = base / "served"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "spam-classifier.git")], check=True)
    # `mlflow run --version <commit>` fetches a commit by id.
    subprocess.run(["git", "config", "uploadpack.allowAnySHA1InWant", "true"], cwd=served / "spam-classifier.git",
                   check=True)
    port = free_port()
    url = f"git://127.0.0.1:{port}/spam-classifier.git"
    with background(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1", f"--port={port}",
                     f"--base-path={served}", served], base, "git daemon",
                    lambda: subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0):
        yield {"url": url, "commits": commits}
