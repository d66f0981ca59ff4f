"""tokenize: turn prepare's splits into token ids with the model's fast tokenizer.

Inputs:  data (URI of prepare's output), model (whose tokenizer: Hub id or local folder), and
         how a text is read (steps/core/reading.py): max_length, long_text (head, head_tail or
         chunks), stride.
Logs:    artifact tokenized/ holding dataset/ (a `datasets` DatasetDict saved with
         save_to_disk, no padding: batches are padded at training time; with chunks, a row per
         window and its text's index in `document`), train.parquet and validation.parquet
         (prepare's texts: train's lexical model reads them), tokenizer/ and task.json (prepare's, with the
         reading added: register stores it in the model, which reads every text the same way),
         README.md (prepare's model card with what a long text loses added to its limits);
         token-length metrics (median, p95, max, fraction_truncated: the texts (or pairs)
         longer than max_length) and <split>_windows.
Output:  runs:/<run id>/tokenized
"""

import dataclasses
import shutil
import tempfile
from pathlib import Path

import click
import mlflow

from steps.core import card, hub, tokens
from steps.core.reading import Reading
from steps.core.task import read_task, write_task
from steps.plumbing import contract, tracking
from steps.plumbing.cli import spec_from, spec_options, summary


@click.command(help=summary(__doc__))
@click.option("--data", required=True, help="URI of prepare's output folder.")
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True)
@spec_options(Reading)
def main(data, model, **options):
    with tracking.step_run() as run:
        reading = spec_from(Reading, options)
        tracking.carry_data_digest(data)
        data_dir = Path(tracking.download(data, "the prepared splits"))
        splits = tokens.read_splits(data_dir)
        tokenizer = tokens.load_tokenizer(model)
        tokenized, stats = tokens.tokenize_splits(splits, tokenizer, reading)
        mlflow.log_metrics(stats)
        click.echo("token lengths: " + ", ".join(f"{k} {v:g}" for k, v in stats.items()))
        if warning := tokens.cut_warning(stats, reading):
            click.echo(warning)
            mlflow.set_tag("long_text_warning", warning)

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, contract.TOKENIZED_DIR)
            tokenized.save_to_disk(str(folder / "dataset"))
            tokenizer.save_pretrained(str(folder / "tokenizer"))
            for split in contract.LEXICAL_SPLITS:
                shutil.copy(data_dir / contract.split_file(split), folder)
            write_task(dataclasses.replace(read_task(data_dir), reading=reading), folder)
            card.write_card(card.with_limits(card.read_card(data_dir), card.reading_limit(
                reading.max_length, reading.long_text, stats["fraction_truncated"])), folder)
            mlflow.log_artifacts(str(folder), contract.TOKENIZED_DIR)
        tracking.set_output(tracking.artifact_uri(run, contract.TOKENIZED_DIR))


if __name__ == "__main__":
    main()
