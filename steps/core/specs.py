"""Every step's settings, declared once: a frozen dataclass a concern, each field with its default,
its range or choices, and its help. The steps' command-line options are made from them
(steps/plumbing/cli.py), main takes and forwards them whole, and a test holds MLproject to them: a
new setting is one field here (or in the Recipe, recipe.py, or the Reading, reading.py) plus one
MLproject line."""

from dataclasses import asdict, dataclass, field

PRECISIONS = ("auto", "bf16", "fp16", "fp32")  # train's precision, register's serving dtype
SERVING_FORMATS = ("transformers", "onnx", "onnx-int8")
AUTO = "auto"  # a setting resolved from the task


def setting(default, help: str = "", **limits):  # noqa: A002 (click's word)
    """A field with what its command-line option needs: help, and min/max (min_open, max_open) or
    choices; `auto`: a number field that also takes "auto", and its value for the demo task."""
    return field(default=default, metadata={"help": help, **limits})


def field_type(spec_field) -> type:
    """The Python type of a spec's field (its annotation is a string under dataclasses' handling)."""
    return {"int": int, "float": float, "bool": bool, "str": str}.get(spec_field.type, spec_field.type)


def as_params(spec) -> dict[str, str]:
    """A spec as entry-point parameters (what `mlflow run` passes and the runs record)."""
    return {name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in asdict(spec).items()}


@dataclass(frozen=True)
class Preparation:
    """prepare: which columns hold what, and how the data is split (the seed is the Recipe's)."""
    text_column: str = setting("", "The text column, found automatically for known layouts; first,second: a text "
                                   "pair.")
    label_column: str = setting("", "Found automatically for known layouts.")
    labels: str = setting("", "Comma-separated: the label set in id order; rows with other labels are refused. "
                              "Empty: read from the data.")
    label_separator: str = setting("", "Multi-label CSV/TSV: the character between a text's tags (e.g. '|'); a "
                                       "label column of lists (Parquet, JSON) needs none.")
    positive_label: str = setting("", "A binary task's positive class; empty: spam for ham/spam, else the less "
                                      "frequent class.")
    test_size: float = setting(0.2, "Share of the rows held out for validate.", min=0, max=1, min_open=True,
                               max_open=True)
    validation_size: float = setting(0.1, "Share of the rows for the per-epoch validation.", min=0, max=1,
                                     min_open=True, max_open=True)


@dataclass(frozen=True)
class Serving:
    """register: the format the version is served in and its inference settings."""
    serving_format: str = setting("transformers", "transformers: MLflow's transformers model; onnx: served by ONNX "
                                                  "Runtime; onnx-int8: with int8 weights.", choices=SERVING_FORMATS)
    # 16 by measurement (benchmarks/serving.py): with bf16 on this project's CPU, batches of 16 in
    # request order score over 3x as many messages/s as 64, which pad more and run slower.
    serving_batch_size: int = setting(16, "The served model's batch size.", min=1)
    serving_dtype: str = setting("auto", "The served weights' type; auto: bf16 where this machine computes it "
                                         "natively, fp16 on older GPUs, else fp32.", choices=PRECISIONS)
    device: str = setting("auto", "Where the served model runs: auto (a GPU when one is visible), cpu, cuda, cuda:N "
                                  "or mps.")


@dataclass(frozen=True)
class Gate:
    """validate: what a version must reach to become champion."""
    # auto: the tutorial's bar for its ham/spam demo, no floor for other tasks, whose fitting bar is
    # unknown (subset accuracy over 30 tags is far below 0.95 for any good model): the baseline and
    # champion rules hold for every task
    min_accuracy: str = setting(AUTO, "Test accuracy at least (0 to 1); auto: 0.95 for the ham/spam demo, no floor "
                                      "for other tasks.", min=0, max=1, auto=0.95)
    min_f1: str = setting(AUTO, "The task's test F1 at least (0 to 1): the positive class's for a binary task, macro "
                                "for more; auto: 0.85 for the ham/spam demo, no floor for other tasks.", min=0, max=1,
                          auto=0.85)
    checks: str = setting("", "Behaviour checks (CSV/JSON/Parquet of text, expected label, capability); empty: "
                              "steps/checks/behaviour.csv for ham/spam, none for other tasks.")
    min_check_pass_rate: float = setting(0.9, "Share of the behaviour checks a version must pass; 1: every one.",
                                         min=0, max=1)
    min_margin_over_baseline: float = setting(0.0, "F1 a version needs above the TF-IDF + linear SVM baseline's; "
                                                   "negative: allowed below it.", min=-1, max=1)
