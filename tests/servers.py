"""Real servers on loopback for the tests, each in a temporary folder and stopped afterwards:
PostgreSQL, an S3 API (moto's standalone server), `mlflow server` in its variants, and a git
daemon serving this project. The commands are the README's (Team server)."""

import contextlib
import glob
import importlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

GIT = ["git", "-c", "user.name=Tests", "-c", "user.email=tests@example.com"]
BUCKET = "mlflow-artifacts"
ADMIN = "admin"


def need(module: str):
    """A test-only package's module, or a failure that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        pytest.fail(f"{module} is missing: pip install -r requirements-test.txt", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(ready, what, seconds=90, process=None, log=None):
    """Poll `ready` until it is true; fail early, with the log's end, when `process` exits."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{Path(log).read_text()[-3000:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not start in {seconds} s")


def answers(url: str) -> bool:
    return urllib.request.urlopen(url, timeout=2).status == 200


@contextlib.contextmanager
def background(command, folder: Path, what: str, ready, env=None):
    """`command` running in `folder` (its output in `<what>.log` there) until the block ends."""
    log_path = folder / f"{what.replace(' ', '-')}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(list(map(str, command)), stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                                   env={**os.environ, **(env or {})})
        try:
            wait_until(ready, what, process=process, log=log_path)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def mlflow_server(folder: Path, *options, env=None, port=None):
    """`mlflow server` on a loopback port (a free one unless given) with `options`; its URL and a
    `background` context that runs it."""
    port = port or free_port()
    uri = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", port, "--workers", "1",
               *options]
    # No background job runners (MLflow's GenAI jobs, which the pipeline does not use): starting them
    # keeps a 2-core machine busy for most of a minute after /health answers.
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
    return uri, background(command, folder, "mlflow server", lambda: answers(f"{uri}/health"), env)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` with sqlite behind it, artifacts proxied into a temp folder."""
    folder = tmp_path_factory.mktemp("server")
    uri, running = mlflow_server(folder, "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                                 "--artifacts-destination", folder / "artifacts")
    with running:
        yield uri


def postgres_bin() -> Path:
    """The folder of initdb and pg_ctl: Debian keeps them under /usr/lib/postgresql/<version>/bin."""
    found = [str(Path(path).resolve()) for path in [shutil.which("initdb")] if path] \
        or sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail("PostgreSQL is not installed: `apt-get install -y postgresql` (Debian, Ubuntu) provides "
                    "initdb and pg_ctl, which these tests run on a free loopback port", pytrace=False)
    return Path(found[-1]).parent


def as_database_owner(command) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user."""
    command = list(map(str, command))
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


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


def s3_objects(s3_env: dict, prefix: str) -> list[str]:
    client = need("boto3").client("s3", endpoint_url=s3_env["MLFLOW_S3_ENDPOINT_URL"],
                          aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
                          region_name=s3_env["AWS_DEFAULT_REGION"])
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@contextlib.contextmanager
def team_server(folder: Path, postgres, s3_env: dict, artifacts: str):
    """The team setup: `mlflow server --app-name basic-auth` with runs in PostgreSQL and artifacts
    in S3, either proxied through the server ("proxied") or written there by the clients
    ("direct"). Yields the URI, the admin's password and the backend store's URI."""
    need("flask_wtf")  # what mlflow[auth] adds
    auth_config = folder / "basic_auth.ini"
    auth_config.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = {postgres(f'auth_{artifacts}')}\n"
                           f"admin_username = {ADMIN}\nauth_cache_ttl_seconds = 60\n")
    password = f"test-password-{os.urandom(12).hex()}"
    store = f"s3://{BUCKET}/{artifacts}"
    artifact_options = ["--artifacts-destination", store] if artifacts == "proxied" else \
        ["--no-serve-artifacts", "--default-artifact-root", store]
    backend_store = postgres(f"mlflow_{artifacts}")
    uri, running = mlflow_server(folder, "--backend-store-uri", backend_store, *artifact_options,
                                 "--app-name", "basic-auth",
                                 env={**s3_env, "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
                                      "MLFLOW_AUTH_ADMIN_PASSWORD": password,
                                      "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex()})
    with running:
        yield uri, password, backend_store


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
