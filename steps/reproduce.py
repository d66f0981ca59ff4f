"""reproduce: run a finished `main` again from a fresh clone of its commit and compare metrics.

Inputs:  run_id (a run of `main`), tolerance (largest difference allowed per metric).
Does:    reads the run's source, commit and parameters; clones the source into a temporary
         folder and checks the commit out there (the user's working tree is never touched);
         runs `main` from that clone with the same parameters and step reuse off, as a child
         of this run; prints each test metric old and new with the difference. The registry is
         left as it was: the reproduction registers under a registered model of its own,
         `<registered_model_name>-reproduction-<this run id>`, deleted when the run ends, so
         no alias of the original model moves, whatever the reproduced commit's code does.
Logs:    tags reproduced_run_id, reproduction_run_id, source, commit; a metric
         `difference_<metric>` for each test metric.
Fails:   when a metric differs by more than the tolerance, or a metric is missing.
"""

import contextlib
import shlex
import tempfile
from pathlib import Path

import click
import git
import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from steps.plumbing import contract, tracking
from steps.plumbing.cli import summary
from steps.core.errors import PipelineError


def source_of(run) -> tuple[str, str]:
    """The git source (URL or local folder) and commit a run was made from."""
    tags = run.data.tags
    source = tags.get("mlflow.source.name", "").split("#")[0].removeprefix("file://")
    commit = tags.get(contract.COMMIT_TAG)
    if not commit or not source:
        raise PipelineError(f"run {run.info.run_id} records no git source and commit: only runs made from a "
                            "git checkout or URL can be reproduced")
    return source, commit


def recorded_parameters(run) -> dict[str, str]:
    """The parameters as given: MLflow Projects record them shell-quoted (`''` for an empty one)."""
    def unquote(value):
        parts = shlex.split(value)
        return parts[0] if len(parts) == 1 else "" if not parts else value

    return {key: unquote(value) for key, value in run.data.params.items()}


def with_absolute_paths(parameters: dict[str, str], source: str) -> dict[str, str]:
    """Relative paths (`-P dataset=../data/sms.tsv`) were relative to the original checkout;
    the reproduction runs from a clone elsewhere."""
    base = Path(source)
    if not base.is_dir():
        return parameters
    return {key: str((base / value).resolve()) if value and not Path(value).is_absolute() and ":/" not in value
            and (base / value).exists() else value for key, value in parameters.items()}


def clone_at(source: str, commit: str, folder: str) -> None:
    try:
        repo = git.Repo.clone_from(source, folder)
    except git.GitCommandError as err:
        raise PipelineError(f"cannot clone {source} ({err.stderr.strip().splitlines()[-1] if err.stderr else err}): "
                            "make the project's repository reachable from here") from None
    try:
        repo.git.checkout(commit)
    except git.GitCommandError:
        raise PipelineError(f"commit {commit} does not exist in {source}: was it pushed, or the history "
                            "rewritten?") from None


def compare(old: dict[str, float], new: dict[str, float], tolerance: float) -> tuple[list[str], list[str]]:
    """Report lines for every test metric, and the names of those that differ beyond the tolerance."""
    lines, differing = [], []
    for name in sorted(key for key in old if key.startswith("test_")):
        if name not in new:
            lines.append(f"  {name:<15} {old[name]:.6f} -> missing")
            differing.append(name)
            continue
        difference = new[name] - old[name]
        lines.append(f"  {name:<15} {old[name]:.6f} -> {new[name]:.6f}  ({difference:+.2e})")
        if abs(difference) > tolerance:
            differing.append(name)
    return lines, differing


def reproduction_model_name(parameters: dict[str, str], run_id: str) -> str:
    """A registered model of the reproduction's own: its validation compares with no champion
    but its own, and moves no alias of the original model."""
    return f"{parameters['registered_model_name']}-reproduction-{run_id}"


@contextlib.contextmanager
def registered_model_deleted(client, name: str):
    """Delete the registered model `name` (with its versions) on the way out, if it was made."""
    try:
        yield
    finally:
        try:
            client.delete_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise


@click.command(help=summary(__doc__))
@click.option("--run-id", required=True, help="The run id of a finished main run.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=1e-6, show_default=True)
def main(run_id, tolerance):
    with tracking.step_run() as run:
        client = MlflowClient()
        try:
            original = client.get_run(run_id)
        except MlflowException:
            raise PipelineError(f"no run {run_id} at {mlflow.get_tracking_uri()}: pass the run id of a main run "
                                "(MLflow UI, or `mlflow runs list`)") from None
        if original.data.tags.get(contract.ENTRY_POINT_TAG) != "main" or original.info.status != "FINISHED":
            raise PipelineError(f"run {run_id} is not a finished run of main: pass the run id of a finished main run")
        source, commit = source_of(original)
        if original.data.tags.get(contract.DIRTY_TAG) == "true":
            click.echo(f"note: run {run_id} had uncommitted changes; reproducing commit {commit} without them")
        mlflow.set_tags({"reproduced_run_id": run_id, "reproduced_source": source, "reproduced_commit": commit})
        parameters = {**with_absolute_paths(recorded_parameters(original), source), "use_cache": "false"}

        with tempfile.TemporaryDirectory() as folder:
            clone_at(source, commit, folder)
            parameters["registered_model_name"] = throwaway = reproduction_model_name(parameters, run.info.run_id)
            with registered_model_deleted(client, throwaway):
                click.echo(f"== main from {source} at {commit[:12]} (registering as {throwaway}, deleted after)")
                reproduction, succeeded = tracking.run_entry_point(folder, "main", parameters,
                                                                   run.info.experiment_id)
        new_id = reproduction.info.run_id
        mlflow.set_tag("reproduction_run_id", new_id)
        if not succeeded:
            raise PipelineError(f"the reproduction (run {new_id}) failed: see its output above")

        new = reproduction.data.metrics
        lines, differing = compare(original.data.metrics, new, tolerance)
        mlflow.log_metrics({f"difference_{name}": new[name] - value for name, value in original.data.metrics.items()
                            if name.startswith("test_") and name in new})
        click.echo(f"run {run_id} reproduced as {new_id}:\n" + "\n".join(lines))
        if differing:
            raise PipelineError(f"{', '.join(differing)} differ by more than {tolerance:g} from run {run_id}")


if __name__ == "__main__":
    main()
