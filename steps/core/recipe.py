"""The fine-tuning recipe: every setting of a training, declared once with its default, its range
and its help. train, tune, main and the benchmark take a Recipe; their command-line options are
made from these fields (steps/plumbing/cli.py), and a test holds MLproject to them. A new
hyperparameter is a new field here and a line in MLproject (steps/core/specs.py: the other steps' specs)."""

from dataclasses import dataclass, fields, replace

from steps.core.errors import PipelineError
from steps.core.specs import PRECISIONS, setting


@dataclass(frozen=True)
class Recipe:
    # what tune searches (SEARCHED), and train takes from its best trial
    epochs: float = setting(3.0, min=0, min_open=True)
    batch_size: int = setting(16, "Per process: the effective batch is batch_size x num_processes.", min=1)
    learning_rate: float = setting(1e-4, min=0, min_open=True)
    weight_decay: float = setting(0.0, min=0)
    warmup_ratio: float = setting(0.0, "Share of the steps over which the learning rate rises.", min=0, max=1,
                                  max_open=True)
    # how the training runs
    seed: int = setting(22, "Draws the split in prepare, the new head and the batches.")
    precision: str = setting("auto", "auto: bf16 where the hardware has it, fp16 on older GPUs, else fp32.",
                             choices=PRECISIONS)
    group_by_length: bool = setting(True, "Batch messages of similar length together (less padding).")
    eval_batch_size: int = setting(64, "Batch size of the per-epoch validation.", min=1)
    device: str = setting("auto", "auto: a GPU when there is one; cpu: the CPU even then.", choices=("auto", "cpu"))
    class_weights: str = setting("auto", "balanced: weigh each class's loss by the inverse of its share of the "
                                         "training split (scikit-learn's balanced weights); none: every text alike; "
                                         "auto: balanced for tags, none for classes (as measured: docs/parameters.md).",
                                 choices=("auto", "none", "balanced"))
    thresholds: str = setting("auto", "Multi-label tasks: fixed answers a tag at probability 0.5; tuned picks each "
                                      "tag's threshold for its best F1 on the validation split; auto: tuned for tags.",
                              choices=("auto", "fixed", "tuned"))
    blend: str = setting("auto", "auto: blend the encoder with a TF-IDF + logistic regression model fitted on the "
                                 "train split, weighted as the validation split scores best (0: the encoder alone); "
                                 "none: the encoder alone.", choices=("auto", "none"))
    early_stopping_patience: int = setting(0, "Stop after this many epochs without a better validation score (the "
                                              "best epoch is kept); 0: train every epoch.", min=0)

    def for_task(self, multi_label: bool) -> "Recipe":
        """The recipe with `auto` resolved for the task (tags: balanced weights and tuned thresholds,
        without which a rare tag is never answered; classes: neither); a one-line error for a setting
        that does not fit the task."""
        if self.thresholds == "tuned" and not multi_label:
            raise PipelineError("thresholds=tuned is for multi-label tasks (a tag's threshold); this task answers "
                                "one class a text: leave thresholds at auto or fixed")
        auto = {"class_weights": "balanced" if multi_label else "none", "thresholds": "tuned" if multi_label else "fixed"}
        return replace(self, **{name: value for name, value in auto.items() if getattr(self, name) == "auto"})

    def check(self) -> None:
        """A one-line error for a patience that could never stop the training: the first epoch sets
        the score to beat, so stopping needs patience + 1 epochs."""
        if self.early_stopping_patience and self.early_stopping_patience >= self.epochs:
            raise PipelineError(f"early_stopping_patience={self.early_stopping_patience} cannot stop a training of "
                                f"epochs={self.epochs:g}: lower the patience below epochs, raise epochs, or set it to 0")


SEARCHED = ("learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay")
FIELDS = {f.name: f for f in fields(Recipe)}
