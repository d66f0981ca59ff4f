"""Running one of main's steps, or reusing it: a step is not run again when a FINISHED run of the
same entry point exists in the experiment with the same resolved parameters (its upstream inputs
among them), made from the same commit with a clean tree, and this checkout is clean too."""

import click
import mlflow
from mlflow.projects import _project_spec
from mlflow.tracking import MlflowClient

from steps.core.errors import PipelineError
from steps.plumbing import contract, tracking


def reusable_run(entry_point: str, parameters: dict, experiment_id: str, commit: str):
    """A finished run that did exactly this step: same entry point, resolved params and clean commit."""
    spec = _project_spec.load_project(str(tracking.PROJECT_DIR)).get_entry_point(entry_point)
    resolved, _ = spec.compute_parameters(parameters, storage_dir=None)  # what `mlflow run` logs, defaults too
    candidates = MlflowClient().search_runs(
        [experiment_id],
        f"tags.`{contract.ENTRY_POINT_TAG}` = '{entry_point}' AND attributes.status = 'FINISHED' "
        f"AND tags.`{contract.COMMIT_TAG}` = '{commit}' AND tags.{contract.DIRTY_TAG} = 'false'",
        order_by=["attributes.start_time DESC"], max_results=100)
    for run in candidates:
        if contract.OUTPUT_TAG in run.data.tags and \
                all(run.data.params.get(key) == str(value) for key, value in resolved.items()):
            return run
    return None


def run_step(entry_point: str, parameters: dict, experiment_id: str, reuse_commit: str | None):
    """The finished run of one entry point: a reused one, or a new child of the active run."""
    reused = reuse_commit and reusable_run(entry_point, parameters, experiment_id, reuse_commit)
    mlflow.set_tag(contract.step_tag(entry_point, "reused"), str(bool(reused)).lower())
    if reused:
        click.echo(f"== {entry_point}: reusing run {reused.info.run_id}")
        mlflow.set_tag(contract.step_tag(entry_point), reused.info.run_id)
        return reused
    click.echo(f"== {entry_point}")
    child, succeeded = tracking.run_entry_point(str(tracking.PROJECT_DIR), entry_point, parameters, experiment_id,
                                                run_name=entry_point)
    mlflow.set_tag(contract.step_tag(entry_point), child.info.run_id)
    if not succeeded:
        reason = child.data.tags.get(contract.ERROR_TAG, "see its output above")
        raise PipelineError(f"step {entry_point} failed (run {child.info.run_id}): {reason}")
    return child


def reuse_commit(use_cache: bool) -> str | None:
    """The commit whose finished steps may be reused, or None when nothing may be."""
    if not use_cache:
        return None
    commit, dirty = tracking.git_state()
    if commit is None or dirty:
        click.echo("step reuse off: "
                   + ("not a git checkout" if commit is None else "the tree has uncommitted changes"))
        return None
    return commit
