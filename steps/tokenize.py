"""tokenize: turn prepare's splits into token ids with the model's fast tokenizer.

Inputs:  data (URI of prepare's output), model (whose tokenizer: Hub id or local folder),
         max_length.
Logs:    artifact tokenized/ holding dataset/ (a `datasets` DatasetDict saved with
         save_to_disk, no padding: batches are padded at training time), tokenizer/ and
         task.json (prepare's); token-length metrics (median, p95, max, fraction truncated).
Output:  runs:/<run id>/tokenized
"""

import shutil
import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from steps.core import hub, task
from steps.core.errors import PipelineError
from steps.shared import tracking

SPLITS = ("train", "validation", "test")


def read_splits(folder: Path) -> DatasetDict:
    missing = [f for f in [f"{s}.parquet" for s in SPLITS] + [task.FILE] if not (folder / f).exists()]
    if missing:
        raise PipelineError(f"{folder} has no {', '.join(missing)}: pass the output URI of prepare as data")
    return DatasetDict({s: Dataset.from_pandas(pd.read_parquet(folder / f"{s}.parquet"), preserve_index=False)
                        for s in SPLITS})


def token_length_stats(lengths, max_length: int) -> dict[str, float]:
    lengths = np.asarray(lengths)
    return {"token_length_median": float(np.median(lengths)),
            "token_length_p95": float(np.percentile(lengths, 95)),
            "token_length_max": float(lengths.max()),
            "fraction_truncated": float((lengths > max_length).mean())}


def tokenize_splits(splits: DatasetDict, tokenizer, max_length: int) -> tuple[DatasetDict, dict[str, float]]:
    """Token ids truncated to max_length, unpadded; and the untruncated length figures."""
    texts = [t for split in splits.values() for t in split["text"]]
    stats = token_length_stats([len(ids) for ids in tokenizer(texts)["input_ids"]], max_length)
    tokenized = splits.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
                           batched=True, remove_columns=["text"])
    return tokenized, stats


def load_tokenizer(model: str):
    tokenizer = hub.load_pretrained(AutoTokenizer.from_pretrained, model, "tokenizer")
    if not tokenizer.is_fast:
        raise PipelineError(f"the tokenizer of {model} has no fast (Rust) version: pick a model that has one")
    return tokenizer


@click.command(help=__doc__)
@click.option("--data", required=True, help="URI of prepare's output folder.")
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=128, show_default=True)
def main(data, model, max_length):
    with tracking.step_run() as run:
        tracking.carry_data_digest(data)
        data_dir = Path(tracking.download(data, "the prepared splits"))
        splits = read_splits(data_dir)
        tokenizer = load_tokenizer(model)
        tokenized, stats = tokenize_splits(splits, tokenizer, max_length)
        mlflow.log_metrics(stats)
        click.echo("token lengths: " + ", ".join(f"{k} {v:g}" for k, v in stats.items()))

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, "tokenized")
            tokenized.save_to_disk(str(folder / "dataset"))
            tokenizer.save_pretrained(str(folder / "tokenizer"))
            shutil.copy(data_dir / task.FILE, folder)
            mlflow.log_artifacts(str(folder), "tokenized")
        tracking.set_output(tracking.artifact_uri(run, "tokenized"))


if __name__ == "__main__":
    main()
