"""A registered version's model card after validate: the card register logged in the version's run
(contract.CARD_FILE), with validate's figures and verdict added (steps/core/card.py), written back
there and into validate's run, and the version's description set to its summary. Written before
any alias moves: a card that cannot be written fails the step in one line (`writing`, register's
too)."""

import contextlib
import tempfile
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

from steps.core import card
from steps.core.errors import PipelineError
from steps.core.gate import Evidence
from steps.plumbing import contract


@contextlib.contextmanager
def writing(where: str, then: str):
    """A store that refuses the card, as one line: which card, why, and what to do `then`."""
    try:
        yield
    except (MlflowException, OSError) as err:
        raise PipelineError(f"cannot write the model card {where} ({str(err).splitlines()[0][:160]}): make the "
                            f"artifact store writable and {then}") from None


def version_card(run_id: str):
    """The card in the version's run; an empty one for a version registered before cards were."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=contract.CARD_FILE, dst_path=tmp)
        except (MlflowException, OSError):
            return card.read_card(tmp)
        return card.read_card(Path(path).parent)


def publish(client, name: str, version: str, evidence: Evidence, verdict: str) -> None:
    run_id = client.get_model_version(name, version).run_id
    model_card = card.with_section(version_card(run_id), "Evaluation", card.evaluation_section(evidence, verdict))
    if limit := card.few_rows_limit(evidence.test_counts):
        model_card = card.with_limits(model_card, limit)
    model_card = card.with_results(model_card, f"{name} version {version}", evidence.scores)
    with tempfile.TemporaryDirectory() as tmp, writing(
            f"of {name} version {version} into run {run_id}",
            "run validate again; the version is neither promoted nor rejected"):
        path = str(card.write_card(model_card, tmp))
        client.log_artifact(run_id, path, contract.CARD_DIR)
        mlflow.log_artifact(path, contract.CARD_DIR)
    client.update_model_version(name, version, card.summary(
        model_card, name, version, f"Test {evidence.task.f1_name} {evidence.scores['f1']:.4f} (TF-IDF baseline "
        f"{evidence.baseline_scores['f1']:.4f}" + (f"; {evidence.baseline_difference.said(evidence.task.f1_name, 'TF-IDF')}"
                                                 if evidence.baseline_difference else "") + f"); {verdict}",
        card.card_page(client.get_run(run_id).info.experiment_id, run_id, contract.CARD_FILE)))
