"""Registry moves after validation: a version's verdict on the version, and `@champion` on the
best passed version, whatever the order in which concurrent validations finish.

MLflow has no compare-and-set on aliases. So a passed version records its test F1 (the task's; tag
`test_f1`) before it is marked passed, and promotion then sets `@champion` to the best passed
version (highest recorded F1; a tie goes to the newer version), re-reads, and repeats until
alias and best agree. A validation that wrote a stale alias sees that on its re-read and
corrects it. Each check reads the best before the alias: every verdict and every alias write
is followed by its own validation's check, so the check that comes last sees all verdicts,
and no alias is written after it.

A store writes an alias as "update if present, else insert": two first writes at once make one
fail on the alias's unique key (seen on a sqlite-backed server). A write that fails while the alias
moved under it is such a loss to a concurrent writer, and is settled like any stale write; one that
fails with the alias unmoved is a real error and is raised.
"""

from mlflow.exceptions import MlflowException

from steps.core.errors import PipelineError
from steps.plumbing import contract

ATTEMPTS = 10  # each retry follows a write by another validation, so a few concurrent ones settle well within


def champion_version(client, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, contract.CHAMPION_ALIAS).version)
    except MlflowException:
        return None


def current_champion(client, name: str, version: str) -> str | None:
    """The champion to compare `version` with: None when there is none, or it is `version` itself."""
    champion = champion_version(client, name)
    return None if champion == str(version) else champion


def reject(client, name: str, version: str, reason: str) -> None:
    client.set_model_version_tag(name, version, contract.STATUS_TAG, "rejected")
    client.set_model_version_tag(name, version, contract.REASON_TAG, reason[:5000])


def best_passed(client, name: str) -> str | None:
    """The passed version with the highest recorded test F1 (the newer on a tie)."""
    scored = [(float(v.tags[contract.SCORE_TAG]), int(v.version))
              for v in client.search_model_versions(f"name = '{name}'")
              if v.tags.get(contract.STATUS_TAG) == "passed" and contract.SCORE_TAG in v.tags]
    return str(max(scored)[1]) if scored else None


def promote(client, name: str, version: str, test_f1: float) -> str:
    """Record `version` as passed with its score, then settle `@champion` on the best passed
    version; that version."""
    # first: a passed version has a score
    client.set_model_version_tag(name, version, contract.SCORE_TAG, repr(test_f1))
    client.set_model_version_tag(name, version, contract.STATUS_TAG, "passed")
    for _ in range(ATTEMPTS):
        best = best_passed(client, name)  # before the alias is read (why: the module docstring)
        champion = champion_version(client, name)
        if champion == best:
            return best
        try:
            client.set_registered_model_alias(name, contract.CHAMPION_ALIAS, best)
        except MlflowException:
            if champion_version(client, name) == champion:
                raise
    raise PipelineError(f"@{contract.CHAMPION_ALIAS} of {name} kept moving under {ATTEMPTS} tries to settle it: "
                        f"version {version} is recorded as passed; validate it again to settle the alias")
