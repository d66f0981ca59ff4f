"""Resuming a killed training: each epoch's full Trainer checkpoint goes into the run's artifacts,
and a later run of `train` with the same parameters and commit picks up from the latest one."""

import mlflow
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

from steps.plumbing import contract, tracking

FOLDER = "resumable"           # resumable/epoch-<n>/: weights, optimizer, scheduler, RNG states, trainer state


class LogEachEpoch(TrainerCallback):
    """After each epoch's save (save_strategy="epoch"), that checkpoint into the active run's
    artifacts; then the tag that says it is complete, then the previous epoch's is dropped."""

    def __init__(self):
        self.logged = None  # the folder of the last complete one

    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        epoch = round(state.epoch)
        mlflow.log_artifacts(f"{args.output_dir}/checkpoint-{state.global_step}", f"{FOLDER}/epoch-{epoch}")
        mlflow.set_tag(contract.EPOCH_TAG, str(epoch))
        if self.logged:
            get_artifact_repository(mlflow.active_run().info.artifact_uri).delete_artifacts(self.logged)
        self.logged = f"{FOLDER}/epoch-{epoch}"


def find_run(run):
    """The newest run that did not finish (FAILED, KILLED, or RUNNING with its process gone), holds
    a complete resumable checkpoint, and had exactly `run`'s params and commit; or None."""
    candidates = MlflowClient().search_runs(
        [run.info.experiment_id], f"tags.{contract.EPOCH_TAG} LIKE '%' AND attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=100)
    for candidate in candidates:
        if candidate.info.run_id == run.info.run_id or \
                candidate.info.status == "RUNNING" and not tracking.is_dead(candidate):
            continue
        if candidate.data.tags.get(contract.COMMIT_TAG) == run.data.tags.get(contract.COMMIT_TAG) and \
                candidate.data.params == run.data.params:
            return candidate
    return None


def checkpoint_uri(run) -> str:
    return f"runs:/{run.info.run_id}/{FOLDER}/epoch-{run.data.tags[contract.EPOCH_TAG]}"


def drop(run_id: str) -> None:
    """A finished run is never resumed: its resumable checkpoints only take space."""
    get_artifact_repository(mlflow.get_run(run_id).info.artifact_uri).delete_artifacts(FOLDER)
