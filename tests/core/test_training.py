"""The training core (steps/core/training.py) and its recipe's checks (steps/core/recipe.py): early
stopping stops, keeps the best epoch, and goes on counting where a resumed training stopped."""

import dataclasses
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer, TrainerCallback

from steps.core import tokens
from steps.core.errors import PipelineError
from steps.core.reading import Reading
from steps.core.recipe import Recipe
from steps.core.task import infer_task
from steps.core.training import epochs_run, fine_tune, weighted_loss
from steps.plumbing import contract

# A learning rate too small to move the weights: the validation F1 never improves after the first
# epoch, so a patience of N stops the training after epoch N + 1, whatever the data.
FROZEN = Recipe(learning_rate=1e-12, batch_size=16, seed=1, precision="fp32", device="cpu")


@pytest.fixture
def splits(sms_rows, tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model))
    rows = sms_rows[:120]
    task = infer_task(Dataset.from_dict({"label": [label for label, _ in rows]}).to_pandas()["label"])
    data = Dataset.from_dict({"text": [text for _, text in rows],
                              "label": [task.label2id[label] for label, _ in rows]})
    tokenized, _ = tokens.tokenize_splits(DatasetDict({split: data for split in contract.SPLITS}), tokenizer,
                                          Reading(max_length=32))
    return tokenized, tokenizer, task


class KeepEachEpoch(TrainerCallback):
    """A copy of each epoch's full checkpoint (the Trainer keeps only the last and the best), as
    train's resumable checkpoints are."""

    def __init__(self, folder: Path):
        self.folder = folder

    def on_save(self, args, state, control, **kwargs):
        shutil.copytree(Path(args.output_dir, f"checkpoint-{state.global_step}"),
                        self.folder / f"epoch-{round(state.epoch)}")


def train(splits, tiny_model, folder: Path, recipe: Recipe, resume_from=None, callbacks=()):
    tokenized, tokenizer, task = splits
    return fine_tune(tokenized, tokenizer, str(tiny_model), task, str(folder), recipe, resume_from=resume_from,
                     callbacks=callbacks)


def test_early_stopping_stops_after_patience_epochs_without_improvement_and_keeps_the_best(splits, tiny_model,
                                                                                          tmp_path):
    stopped = train(splits, tiny_model, tmp_path / "stopped",
                    dataclasses.replace(FROZEN, epochs=6, early_stopping_patience=2))
    assert epochs_run(stopped) == (3, 1)  # epoch 1 set the score; 2 and 3 did not beat it
    assert len([entry for entry in stopped.state.log_history if "eval_f1" in entry]) == 3
    every = train(splits, tiny_model, tmp_path / "every", dataclasses.replace(FROZEN, epochs=4))
    assert epochs_run(every) == (4, 1)  # patience 0: every epoch, as before


def test_a_resumed_training_goes_on_counting_epochs_without_improvement(splits, tiny_model, tmp_path):
    recipe = dataclasses.replace(FROZEN, epochs=6, early_stopping_patience=2)
    kept = tmp_path / "kept"
    first = train(splits, tiny_model, tmp_path / "first", dataclasses.replace(recipe, epochs=2),
                  callbacks=[KeepEachEpoch(kept)])
    assert epochs_run(first) == (2, 1)  # epoch 2 is one without improvement
    resumed = train(splits, tiny_model, tmp_path / "resumed", recipe, resume_from=str(kept / "epoch-2"))
    assert epochs_run(resumed) == (3, 1)  # epoch 3 is the second: it stops where the unresumed one does


@pytest.mark.parametrize("epochs, patience", [(3, 3), (2, 5)])
def test_a_patience_that_could_never_stop_the_training_is_one_line(epochs, patience):
    with pytest.raises(PipelineError, match=rf"^early_stopping_patience={patience} cannot stop a training of "
                                            rf"epochs={epochs}: lower the patience below epochs"):
        Recipe(epochs=epochs, early_stopping_patience=patience).check()
    Recipe(epochs=epochs, early_stopping_patience=epochs - 1).check()


def test_balanced_class_weights_weigh_a_rare_class_by_the_inverse_of_its_share():
    loss = weighted_loss([0, 0, 0, 1], 2)  # weights 4 / (2 x 3) and 4 / (2 x 1)
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1])
    each = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (2 / 3 * each[0] + 2 * each[1]) / (2 / 3 + 2)
    assert loss(SimpleNamespace(logits=logits), labels).item() == pytest.approx(expected.item())


def test_train_with_balanced_weights_trains_on_the_weighted_loss(splits, tiny_model, tmp_path):
    recipe = dataclasses.replace(FROZEN, epochs=1, learning_rate=1e-3)
    first_loss = {weights: train(splits, tiny_model, tmp_path / weights, dataclasses.replace(
        recipe, class_weights=weights)).state.log_history[0]["loss"] for weights in ("none", "balanced")}
    assert first_loss["none"] != pytest.approx(first_loss["balanced"], rel=1e-3)  # the same first batch, weighed
