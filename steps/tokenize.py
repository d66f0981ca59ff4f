"""tokenize: turn prepare's splits into token ids with the model's fast tokenizer.

Inputs:  data (URI of prepare's output), model (whose tokenizer: Hub id or local folder), and
         how a text is read (steps/core/reading.py): max_length, long_text (head, head_tail or
         chunks), stride.
Logs:    artifact tokenized/ holding dataset/ (a `datasets` DatasetDict saved with
         save_to_disk, no padding: batches are padded at training time; with chunks, a row per
         window and its text's index in `document`), tokenizer/ and task.json (prepare's, with the
         reading added: register stores it in the model, which reads every text the same way);
         token-length metrics (median, p95, max, fraction_truncated: the texts (or pairs)
         longer than max_length) and <split>_windows.
Output:  runs:/<run id>/tokenized
"""

import dataclasses
import tempfile
from pathlib import Path

import click
import mlflow
import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from steps.core import hub
from steps.core.errors import PipelineError
from steps.core.reading import Reading
from steps.core.task import read_task, write_task
from steps.served import text_classifier
from steps.shared import contract, tracking
from steps.shared.cli import spec_from, spec_options



def read_splits(folder: Path) -> DatasetDict:
    missing = [f for f in [*map(contract.split_file, contract.SPLITS), contract.TASK_FILE] if not (folder / f).exists()]
    if missing:
        raise PipelineError(f"{folder} has no {', '.join(missing)}: pass the output URI of prepare as data")
    return DatasetDict({s: Dataset.from_pandas(pd.read_parquet(folder / contract.split_file(s)), preserve_index=False)
                        for s in contract.SPLITS})


def token_length_stats(lengths, max_length: int) -> dict[str, float]:
    lengths = np.asarray(lengths)
    return {"token_length_median": float(np.median(lengths)),
            "token_length_p95": float(np.percentile(lengths, 95)),
            "token_length_max": float(lengths.max()),
            "fraction_truncated": float((lengths > max_length).mean())}


def tokenize_splits(splits: DatasetDict, tokenizer, reading: Reading) -> tuple[DatasetDict, dict[str, float]]:
    """Each split's windows as token ids (text_classifier.encode: unpadded, with each window's text
    label, and its text's index as `document`); and the untruncated length figures."""
    pair = "text_pair" in splits["train"].column_names
    reading.check(tokenizer.num_special_tokens_to_add(pair=pair), pair)
    texts = [t for split in splits.values() for t in split["text"]]
    pairs = [t for split in splits.values() for t in split["text_pair"]] if pair else None
    stats = token_length_stats([len(ids) for ids in tokenizer(texts, pairs, verbose=False)["input_ids"]],
                               reading.max_length)
    tokenized = {}
    for name, split in splits.items():
        inputs, documents = text_classifier.encode(tokenizer, split["text"], reading.max_length, reading.long_text,
                                                   reading.stride, split["text_pair"] if pair else None)
        labels = list(split["label"])
        tokenized[name] = Dataset.from_dict({**inputs, "label": [labels[d] for d in documents],
                                             "document": documents})
        stats[f"{name}_windows"] = len(documents)
    return DatasetDict(tokenized), stats


def cut_warning(stats: dict[str, float], reading: Reading) -> str | None:
    """A plain word when most texts are longer than the model reads at once and it reads only part."""
    if stats["fraction_truncated"] > 0.5 and reading.long_text != "chunks":
        return (f"{stats['fraction_truncated']:.0%} of texts are cut at {reading.max_length} tokens "
                f"(long_text={reading.long_text}; median {stats['token_length_median']:g} tokens): see long_text "
                "to read them whole")
    return None


def load_tokenizer(model: str):
    tokenizer = hub.load_pretrained(AutoTokenizer.from_pretrained, model, "tokenizer")
    if not tokenizer.is_fast:
        raise PipelineError(f"the tokenizer of {model} has no fast (Rust) version: pick a model that has one")
    return tokenizer


@click.command(help=__doc__)
@click.option("--data", required=True, help="URI of prepare's output folder.")
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True)
@spec_options(Reading)
def main(data, model, **options):
    with tracking.step_run() as run:
        reading = spec_from(Reading, options)
        tracking.carry_data_digest(data)
        data_dir = Path(tracking.download(data, "the prepared splits"))
        splits = read_splits(data_dir)
        tokenizer = load_tokenizer(model)
        tokenized, stats = tokenize_splits(splits, tokenizer, reading)
        mlflow.log_metrics(stats)
        click.echo("token lengths: " + ", ".join(f"{k} {v:g}" for k, v in stats.items()))
        if warning := cut_warning(stats, reading):
            click.echo(warning)
            mlflow.set_tag("long_text_warning", warning)

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, contract.TOKENIZED_DIR)
            tokenized.save_to_disk(str(folder / "dataset"))
            tokenizer.save_pretrained(str(folder / "tokenizer"))
            write_task(dataclasses.replace(read_task(data_dir), reading=reading), folder)
            mlflow.log_artifacts(str(folder), contract.TOKENIZED_DIR)
        tracking.set_output(tracking.artifact_uri(run, contract.TOKENIZED_DIR))


if __name__ == "__main__":
    main()
