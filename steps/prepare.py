"""prepare: read the raw data set, clean it, split it stratified.

Inputs:  dataset (Hub id, local file/folder, or a URI MLflow can download), text_column,
         label_column, test_size, validation_size, seed.
Logs:    artifacts data/{train,validation,test}.parquet and data/label_map.json; the cleaned
         data set as an MLflow dataset input; counts and class balance as metrics.
Output:  runs:/<run id>/data
"""

import json
import tempfile
from pathlib import Path

import click
import mlflow
import pandas as pd

from steps.shared import data, hub, tracking
from steps.shared.sources import load_raw


def prepare(raw: pd.DataFrame, text_column: str, label_column: str, test_size: float,
            validation_size: float, seed: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict]:
    """Normalised and cleaned frame, its splits, and the counts of what was dropped."""
    clean, counts = data.drop_empty_and_repeated(data.normalise(raw, text_column, label_column))
    return clean, data.split_stratified(clean, test_size, validation_size, seed), counts


@click.command(help=__doc__)
@click.option("--dataset", default=hub.DEFAULT_DATASET, show_default=True)
@click.option("--text-column", default="", help="Found automatically for known layouts.")
@click.option("--label-column", default="", help="Found automatically for known layouts.")
@click.option("--test-size", type=float, default=0.2, show_default=True)
@click.option("--validation-size", type=float, default=0.1, show_default=True)
@click.option("--seed", type=int, default=22, show_default=True)
def main(dataset, text_column, label_column, test_size, validation_size, seed):
    with tracking.step_run() as run:
        raw, source = load_raw(dataset)
        clean, splits, counts = prepare(raw, text_column, label_column, test_size, validation_size, seed)

        source_dataset = mlflow.data.from_pandas(clean, source=source, name=Path(dataset).name or dataset,
                                                 targets="label")
        mlflow.log_input(source_dataset, context="source")
        mlflow.set_tag(tracking.DATA_DIGEST_TAG, source_dataset.digest)
        mlflow.log_metrics(counts)
        for name, part in splits.items():
            mlflow.log_metric(f"{name}_rows", len(part))
            mlflow.log_metric(f"{name}_spam_fraction", float(part["label"].mean()))
        click.echo(f"{counts['rows_read']} rows read, {counts['empty_dropped']} empty and "
                   f"{counts['duplicates_dropped']} repeated texts dropped; "
                   + ", ".join(f"{n} {len(p)} ({data.class_balance(p)})" for n, p in splits.items()))

        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp, "data")
            folder.mkdir()
            for name, part in splits.items():
                part.to_parquet(folder / f"{name}.parquet", index=False)
            (folder / "label_map.json").write_text(json.dumps(data.LABELS))
            mlflow.log_artifacts(str(folder), "data")
        tracking.set_output(tracking.artifact_uri(run, "data"))


if __name__ == "__main__":
    main()
