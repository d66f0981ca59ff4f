"""MLflow plumbing shared by the steps: the step's run, output URIs, downloads, lineage tags."""

import contextlib

import click
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from steps.errors import PipelineError

OUTPUT_TAG = "output_uri"  # what `main` reads back from a finished step to feed the next
ERROR_TAG = "error"        # the one-line reason a step failed
DATA_DIGEST_TAG = "data_digest"


@contextlib.contextmanager
def step_run():
    """The run `mlflow run` created for this step (or a new one when called directly).

    A PipelineError is recorded on the run, marks it FAILED, and leaves the command as a
    one-line `Error: ...` with exit code 1.
    """
    with mlflow.start_run() as run:
        try:
            yield run
        except PipelineError as err:
            mlflow.set_tag(ERROR_TAG, str(err))
            raise click.ClickException(str(err)) from None


def artifact_uri(run, path: str) -> str:
    """A store-independent URI for an artifact of `run`."""
    return f"runs:/{run.info.run_id}/{path}"


def set_output(uri: str) -> None:
    mlflow.set_tag(OUTPUT_TAG, uri)
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
    digest = upstream_tags(uri).get(DATA_DIGEST_TAG)
    if digest:
        mlflow.set_tag(DATA_DIGEST_TAG, digest)
