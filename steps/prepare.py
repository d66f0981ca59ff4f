"""prepare: read the raw data set, clean it, split it stratified.

Inputs:  dataset (Hub id, local file/folder, or a URI MLflow can download), text_column (one
         column, or `first,second`: a text pair), label_column, labels (optional,
         comma-separated: the label set and its order), label_separator (a multi-label CSV's
         character between a text's tags; a column of lists needs none),
         positive_label (binary tasks; default spam for ham/spam, else the less frequent class),
         test_size, validation_size, seed.
Logs:    artifacts data/{train,validation,test}.parquet (text, text_pair for a pair, label id; a
         multi-label task's label a list of 0/1 a tag) and
         data/task.json (the labels in id order, the positive label, how scores are averaged, a
         pair's column names: every later step reads
         the task from here); data/README.md, the model card's start (steps/core/card.py: the
         data set, its digest, each split's class counts; the training texts' scripts in its limits); the cleaned data set as an MLflow dataset input; counts and each
         split's class shares (<split>_<label>_fraction) as metrics; params num_labels, label_names.
Output:  runs:/<run id>/data
"""

import tempfile
from pathlib import Path

import click
import mlflow

from steps.core import card, data, hub
from steps.core.recipe import Recipe
from steps.core.specs import Preparation
from steps.core.task import metric_key, write_task
from steps.plumbing import contract, tracking
from steps.plumbing.cli import spec_from, spec_options, summary
from steps.plumbing.sources import load_raw


@click.command(help=summary(__doc__))
@click.option("--dataset", default=hub.DEFAULT_DATASET, show_default=True,
              help="A Hub data set id, a local file or folder, or a URI MLflow can download.")
@spec_options(Preparation)
@click.option("--seed", type=int, default=Recipe.seed, show_default=True, help="Draws the split.")
def main(dataset, seed, **options):
    with tracking.step_run() as run:
        raw, source = load_raw(dataset)
        clean, task, splits, counts = data.prepare(raw, spec_from(Preparation, options), seed)

        source_dataset = mlflow.data.from_pandas(clean, source=source, name=Path(dataset).name or dataset,
                                                 targets="label")
        mlflow.log_input(source_dataset, context="source")
        mlflow.set_tag(contract.DATA_DIGEST_TAG, source_dataset.digest)
        mlflow.log_metrics(counts)
        mlflow.log_params({"num_labels": len(task.labels), "label_names": ",".join(task.labels)[:6000]})
        for name, part in splits.items():
            mlflow.log_metric(f"{name}_rows", len(part))
            mlflow.log_metrics({f"{name}_{metric_key(label)}_fraction": count / len(part)
                                for label, count in data.class_balance(part, task).items()})
        click.echo(f"{counts['rows_read']} rows read, {counts['empty_dropped']} empty and "
                   f"{counts['duplicates_dropped']} repeated texts dropped; {task.kind}"
                   + (f" ({counts['untagged']} texts without any, kept)" if task.multi_label else "") + ", scored by "
                   f"{task.f1_name}; " + ", ".join(f"{n} {len(p)} ({data.class_balance(p, task)})"
                                                   for n, p in splits.items()))

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, contract.DATA_DIR)
            folder.mkdir()
            for name, part in splits.items():
                part.to_parquet(folder / contract.split_file(name), index=False)
            write_task(task, folder)
            data_card = card.with_section(card.new_card(source_dataset.name), "Training data", card.data_section(
                source_dataset.name, source_dataset.digest, splits, task))
            data_card = card.with_limits(data_card, card.language_limit(splits["train"]["text"]))
            card.write_card(data_card, folder)
            mlflow.log_artifacts(str(folder), contract.DATA_DIR)
        tracking.set_output(tracking.artifact_uri(run, contract.DATA_DIR))


if __name__ == "__main__":
    main()
