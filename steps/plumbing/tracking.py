"""MLflow plumbing shared by the steps: the step's run, output URIs, downloads, lineage and
reproducibility records."""

import contextlib
import importlib.metadata
import os
import platform
import socket
import sys
import urllib.request
from pathlib import Path

import click
import mlflow
import psutil
from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_MAX_RETRIES
from mlflow.exceptions import ExecutionException, MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.name_utils import _GENERATOR_NOUNS, _GENERATOR_PREDICATES
from mlflow.utils.rest_utils import http_request

from steps.core.errors import PipelineError
from steps.plumbing import contract, environment

PROJECT_DIR = Path(__file__).resolve().parents[2]  # steps/plumbing/tracking.py -> the project


def git_state(folder: Path = PROJECT_DIR) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout holding `folder`; (None, None) outside git."""
    import git  # GitPython, which MLflow depends on

    try:
        repo = git.Repo(folder, search_parent_directories=True)
        return repo.head.commit.hexsha, repo.is_dirty(untracked_files=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return None, None


def library_versions() -> str:
    """Python, platform and every installed distribution, pinned: enough to rebuild the environment."""
    pins = sorted({f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions()
                   if d.metadata["Name"]}, key=str.lower)
    return "\n".join([f"# python {sys.version.split()[0]} on {platform.platform()}", *pins]) + "\n"


def server_uri() -> str | None:
    """The tracking URI when it names an HTTP server; None for a local store."""
    uri = mlflow.get_tracking_uri()
    return uri if uri.startswith(("http://", "https://")) else None


def unreachable(uri: str) -> str | None:
    """Why the server at `uri` does not answer its health check; None when it does."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=5).close()
        return None
    except OSError as err:
        return str(getattr(err, "reason", err))


def check_tracking_server() -> None:
    """Fail at once, in one line, when an HTTP tracking server does not answer (MLflow itself
    retries for minutes and then prints a traceback) or refuses the credentials."""
    uri = server_uri()
    if uri is None:
        return
    reason = unreachable(uri)
    if reason:
        raise click.ClickException(f"cannot reach the MLflow tracking server at {uri} ({reason}): "
                                   "start it, or set MLFLOW_TRACKING_URI to a server that runs")
    # /health answers anyone; a search asks the server whether it accepts these credentials, sent
    # the way MLflow sends them (user and password, token, or ~/.mlflow/credentials).
    response = http_request(get_default_host_creds(uri), "/api/2.0/mlflow/experiments/search", "GET",
                            max_retries=0, timeout=10, raise_on_status=False, params={"max_results": 1})
    if response.status_code in (401, 403):
        raise click.ClickException(f"the MLflow tracking server at {uri} refused the credentials (HTTP "
                                   f"{response.status_code}): set MLFLOW_TRACKING_USERNAME and "
                                   "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) to an account it knows")


def lost_server() -> click.ClickException | None:
    """The one-line error for a tracking server that went away mid-step and stayed away longer than
    the retry budget; None while it answers (then an error is not the server's)."""
    uri = server_uri()
    reason = uri and unreachable(uri)
    if not reason:
        return None
    budget = (f"MLFLOW_HTTP_REQUEST_MAX_RETRIES={MLFLOW_HTTP_REQUEST_MAX_RETRIES.get()}, "
              f"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR={MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get()}")
    return click.ClickException(
        f"lost the MLflow tracking server at {uri} ({reason}) for longer than the retry budget ({budget}): "
        "this step stopped and its run stays unfinished; run the pipeline again once the server is back "
        "(train goes on from its last logged epoch)")


def is_generated_name(name: str) -> bool:
    """True for a name MLflow made up (`<predicate>-<noun>-<number>`), False for one a user gave."""
    parts = name.split("-")
    return len(parts) == 3 and parts[0] in {word.lower() for word in _GENERATOR_PREDICATES} \
        and parts[1] in {word.lower() for word in _GENERATOR_NOUNS} and parts[2].isdigit()


def this_process() -> str:
    process = psutil.Process()
    return f"{socket.gethostname()}:{process.pid}:{process.create_time():.2f}"


def is_dead(run) -> bool:
    """True for a run whose process ran on this host and is gone (killed, or its machine restarted).
    A run of another host, or one without the tag, is not judged: it may be alive."""
    host, _, rest = run.data.tags.get(contract.PROCESS_TAG, "").partition(":")
    if host != socket.gethostname() or not rest:
        return False
    pid, started = rest.split(":")
    try:
        return f"{psutil.Process(int(pid)).create_time():.2f}" != started  # the pid now names another process
    except psutil.NoSuchProcess:
        return True


def mark_dead_runs_killed(experiment_id: str) -> list[str]:
    """Set runs left RUNNING by a process that is gone to KILLED, so that the UI shows no zombies
    and no step resumes or reuses them as if alive; their ids."""
    client = MlflowClient()
    dead = [run.info.run_id for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'",
                                                          max_results=1000) if is_dead(run)]
    for run_id in dead:
        client.set_terminated(run_id, "KILLED")
    return dead


def record_reproducibility(run) -> None:
    """Every resolved option (defaults too), the git state and the exact library versions."""
    context = click.get_current_context(silent=True)
    if context:
        logged = mlflow.get_run(run.info.run_id).data.params  # `mlflow run` logs the MLproject's
        mlflow.log_params({key: value for key, value in context.params.items() if key not in logged})
    commit, dirty = git_state()
    if commit:
        mlflow.set_tags({contract.COMMIT_TAG: commit, contract.DIRTY_TAG: str(dirty).lower()})
    mlflow.log_text(library_versions(), "environment/versions.txt")


@contextlib.contextmanager
def step_run(log_system_metrics: bool | None = None):
    """The run `mlflow run` created for this step (or a new one when called directly).

    A PipelineError is recorded on the run, marks it FAILED, and leaves the command as a
    one-line `Error: ...` with exit code 1. So does a tracking server that went away for longer
    than the retry budget (steps/plumbing/environment.py), naming the server; the run then stays unfinished.
    With log_system_metrics (None: MLflow's own MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING decides),
    MLflow samples CPU and memory (and GPU utilisation and memory, given nvidia-ml-py) into the
    run's System metrics every 10 s (MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL).
    """
    environment.configure()
    check_tracking_server()
    lost, budget = None, os.environ.get(MLFLOW_HTTP_REQUEST_MAX_RETRIES.name)
    try:
        with mlflow.start_run(log_system_metrics=log_system_metrics) as run:
            mlflow.set_tag(contract.PROCESS_TAG, this_process())
            record_reproducibility(run)
            try:
                yield run
            except PipelineError as err:
                mlflow.set_tag(contract.ERROR_TAG, str(err))
                raise click.ClickException(str(err)) from None
            except Exception:
                lost = lost_server()
                if lost:  # the budget is spent: ending the run gets one try, not a second budget
                    os.environ[MLFLOW_HTTP_REQUEST_MAX_RETRIES.name] = "0"
                raise
    except Exception:
        lost = lost or lost_server()
        if lost is None:
            raise
        raise lost from None
    finally:
        os.environ.pop(MLFLOW_HTTP_REQUEST_MAX_RETRIES.name, None)
        if budget is not None:
            os.environ[MLFLOW_HTTP_REQUEST_MAX_RETRIES.name] = budget


@contextlib.contextmanager
def joined_run(run: tuple[str, str] | None):
    """In a training process the launcher started: join the step's run, given as (tracking URI, run
    id), so the Trainer's MLflow callback logs into it (it leaves a run it did not start open); on
    leaving, hand it back still RUNNING, as the step that owns it finishes it. None: nothing to join."""
    if run is None:
        yield
        return
    tracking_uri, run_id = run
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.start_run(run_id=run_id, log_system_metrics=False)  # the step's process samples the machine
    try:
        yield
    finally:
        mlflow.end_run(status="RUNNING")


def run_entry_point(project: str, entry_point: str, parameters: dict, experiment_id: str, run_name=None):
    """Run an entry point of `project` (a folder) as a child of the active run and wait for it; its
    run and whether it succeeded. The child runs in this process's group, so a Ctrl-C or a kill of
    the pipeline reaches it too (MLflow's asynchronous mode would start it in a session of its own,
    under a second `mlflow run` that prints a traceback when the server is gone)."""
    try:
        submitted = mlflow.projects.run(project, entry_point=entry_point, parameters=parameters,
                                        experiment_id=experiment_id, run_name=run_name, env_manager="local",
                                        synchronous=True)
        return MlflowClient().get_run(submitted.run_id), True
    except ExecutionException as err:
        parent = mlflow.active_run().info.run_id
        failed = MlflowClient().search_runs(
            [experiment_id],
            f"tags.`{contract.PARENT_TAG}` = '{parent}' AND tags.`{contract.ENTRY_POINT_TAG}` = '{entry_point}'",
            order_by=["attributes.start_time DESC"], max_results=1)
        if not failed:
            raise PipelineError(f"{entry_point} did not start: {err}") from None
        return failed[0], False


def artifact_uri(run, path: str) -> str:
    """A store-independent URI for an artifact of `run`."""
    return f"runs:/{run.info.run_id}/{path}"


def set_output(uri: str) -> None:
    mlflow.set_tag(contract.OUTPUT_TAG, uri)
    click.echo(f"output: {uri}")


def download(uri: str, what: str) -> str:
    """A local copy of the artifact (or local path) at `uri`."""
    try:
        return mlflow.artifacts.download_artifacts(artifact_uri=uri)
    except (MlflowException, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PipelineError(f"cannot read {what} from '{uri}' ({reason[:200]}): "
                            "pass the output URI of the step before") from None


def run_id_of(uri: str) -> str | None:
    """The run that logged a `runs:/<id>/...` URI; None for any other URI."""
    if uri.startswith("runs:/"):
        return uri[len("runs:/"):].strip("/").split("/")[0] or None
    return None


def upstream_tags(uri: str) -> dict[str, str]:
    """Tags of the run that produced `uri` (empty when it was not a run's artifact)."""
    run_id = run_id_of(uri)
    return MlflowClient().get_run(run_id).data.tags if run_id else {}


def carry_data_digest(uri: str) -> None:
    """Copy the data set's digest from the upstream run, so every step names its data."""
    digest = upstream_tags(uri).get(contract.DATA_DIGEST_TAG)
    if digest:
        mlflow.set_tag(contract.DATA_DIGEST_TAG, digest)
