"""The fine-tuning recipe: every setting of a training, declared once with its default, its range
and its help. train, tune, main and the benchmark take a Recipe; their command-line options are
made from these fields (steps/plumbing/cli.py), and a test holds MLproject to them. A new
hyperparameter is a new field here and a line in MLproject (steps/core/specs.py: the other steps' specs)."""

from dataclasses import dataclass, fields

from steps.core.specs import PRECISIONS, as_params, setting


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

    def params(self) -> dict[str, str]:
        return as_params(self)


SEARCHED = ("learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay")
FIELDS = {f.name: f for f in fields(Recipe)}
