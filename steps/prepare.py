"""prepare: read the raw data set, clean it, split it stratified.

Inputs:  dataset (Hub id, local file/folder, or a URI MLflow can download), text_column (one
         column, or `first,second`: a text pair), label_column, labels (optional,
         comma-separated: the label set and its order),
         positive_label (binary tasks; default spam for ham/spam, else the less frequent class),
         test_size, validation_size, seed.
Logs:    artifacts data/{train,validation,test}.parquet (text, text_pair for a pair, label id) and
         data/task.json (the labels in id order, the positive label, how scores are averaged, a
         pair's column names: every later step reads
         the task from here); the cleaned data set as an MLflow dataset input; counts and each
         split's class shares (<split>_<label>_fraction) as metrics; params num_labels, label_names.
Output:  runs:/<run id>/data
"""

import dataclasses
import tempfile
from pathlib import Path

import click
import mlflow
import pandas as pd

from steps.core import data, hub
from steps.core.task import Task, infer_task, metric_key, write_task
from steps.shared import contract, tracking
from steps.shared.sources import load_raw

EXAMPLES = 2  # texts in the registered model's input example: the first train text of the first classes


def prepare(raw: pd.DataFrame, text_column: str, label_column: str, labels: str, positive_label: str,
            test_size: float, validation_size: float,
            seed: int) -> tuple[pd.DataFrame, Task, dict[str, pd.DataFrame], dict]:
    """The cleaned frame (label names), its task, its splits (label ids), and the counts of what was dropped."""
    frame, text_columns = data.normalise(raw, text_column, label_column)
    clean, counts = data.drop_empty_and_repeated(frame)
    task = infer_task(clean["label"], labels, positive_label)
    splits = data.split_stratified(clean, test_size, validation_size, seed)
    firsts = splits["train"].groupby("label", sort=False).first()
    pair = "text_pair" in clean
    examples = tuple((firsts.at[label, "text"], firsts.at[label, "text_pair"]) if pair else firsts.at[label, "text"]
                     for label in task.labels[:EXAMPLES])
    task = dataclasses.replace(task, examples=examples, pair_columns=text_columns if pair else None)
    return clean, task, {name: part.assign(label=task.ids(part["label"])) for name, part in splits.items()}, counts


@click.command(help=__doc__)
@click.option("--dataset", default=hub.DEFAULT_DATASET, show_default=True)
@click.option("--text-column", default="", help="Found automatically for known layouts; first,second: a text pair.")
@click.option("--label-column", default="", help="Found automatically for known layouts.")
@click.option("--labels", default="", help="Comma-separated: the label set in id order; rows with other labels "
                                            "are refused. Empty: read from the data.")
@click.option("--positive-label", default="", help="A binary task's positive class; empty: spam for ham/spam, "
                                                    "else the less frequent class.")
@click.option("--test-size", type=float, default=0.2, show_default=True)
@click.option("--validation-size", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=22, show_default=True)
def main(dataset, text_column, label_column, labels, positive_label, test_size, validation_size, seed):
    with tracking.step_run() as run:
        raw, source = load_raw(dataset)
        clean, task, splits, counts = prepare(raw, text_column, label_column, labels, positive_label, test_size,
                                              validation_size, seed)

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
                   f"{counts['duplicates_dropped']} repeated texts dropped; {len(task.labels)} classes, scored by "
                   f"{task.f1_name}; " + ", ".join(f"{n} {len(p)} ({data.class_balance(p, task)})"
                                                   for n, p in splits.items()))

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, contract.DATA_DIR)
            folder.mkdir()
            for name, part in splits.items():
                part.to_parquet(folder / contract.split_file(name), index=False)
            write_task(task, folder)
            mlflow.log_artifacts(str(folder), contract.DATA_DIR)
        tracking.set_output(tracking.artifact_uri(run, contract.DATA_DIR))


if __name__ == "__main__":
    main()
