"""Registry moves after validation: @champion on the best passed version, whatever the order of writes."""


import pytest
from mlflow.exceptions import MlflowException

from steps.core.errors import PipelineError
from steps.plumbing import promotion

def test_current_champion_is_none_when_validating_the_champion_itself():
    class Client:
        def get_model_version_by_alias(self, name, alias):
            return type("Version", (), {"version": 3})  # MLflow 3 gives versions as int

    assert promotion.current_champion(Client(), "spam-classifier", "3") is None
    assert promotion.current_champion(Client(), "spam-classifier", "4") == "3"


def versions(client, count):
    client.create_registered_model("m")
    return [client.create_model_version("m", source=f"file:///nowhere/{i}").version for i in range(count)]


class WriteHook:
    """A client that runs `before` just before its first alias write: another validation
    promoting in the gap between this one's read and its write. With `fail`, that first write
    then fails as a store's does when a concurrent first write inserted the alias before it."""

    def __init__(self, client, before, fail=False):
        self.client, self.before, self.fail = client, before, fail

    def __getattr__(self, name):
        return getattr(self.client, name)

    def set_registered_model_alias(self, *args):
        before, self.before = self.before, None
        if before:
            before()
            if self.fail:
                raise MlflowException("UNIQUE constraint failed: registered_model_aliases.name, "
                                      "registered_model_aliases.alias")
        return self.client.set_registered_model_alias(*args)


@pytest.mark.parametrize("better_promotes_in_the_gap", [True, False])
@pytest.mark.parametrize("write_in_the_gap_fails", [False, True])
def test_promotion_ends_on_the_better_version_whichever_writes_last(tracking, better_promotes_in_the_gap,
                                                                    write_in_the_gap_fails):
    better, worse = versions(tracking, 2)
    first, second = (worse, 0.93), (better, 0.95)
    if not better_promotes_in_the_gap:
        first, second = second, first
    hook = WriteHook(tracking, lambda: promotion.promote(tracking, "m", *second), fail=write_in_the_gap_fails)
    winner = promotion.promote(hook, "m", *first)
    assert winner == str(better)
    assert str(tracking.get_model_version_by_alias("m", "champion").version) == str(better)
    assert tracking.get_model_version("m", worse).tags == {"test_f1": "0.93", "validation_status": "passed"}


def test_promotion_ties_go_to_the_newer_version_and_rejected_versions_never_count(tracking):
    older, newer, rejected = versions(tracking, 3)
    assert promotion.promote(tracking, "m", older, 0.9) == str(older)
    assert promotion.promote(tracking, "m", newer, 0.9) == str(newer)
    promotion.reject(tracking, "m", rejected, "test spam F1 0.9900 < min_f1 1")
    tracking.set_model_version_tag("m", rejected, "test_f1", "0.99")  # a score without a pass counts for nothing
    assert promotion.best_passed(tracking, "m") == str(newer)
    assert promotion.champion_version(tracking, "m") == str(newer)


def test_an_alias_write_that_fails_with_no_concurrent_writer_is_raised(tracking):
    [version] = versions(tracking, 1)
    with pytest.raises(MlflowException, match="UNIQUE constraint failed"):
        promotion.promote(WriteHook(tracking, lambda: None, fail=True), "m", version, 0.9)
    assert promotion.champion_version(tracking, "m") is None


def test_promotion_gives_up_in_one_line_when_the_alias_never_settles(tracking, monkeypatch):
    [version] = versions(tracking, 1)
    monkeypatch.setattr(promotion, "champion_version", lambda client, name: "another")
    with pytest.raises(PipelineError, match="kept moving under 10 tries"):
        promotion.promote(tracking, "m", version, 0.9)
