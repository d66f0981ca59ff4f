"""predict: score every message of a file, folder or URI with a registered model, in batch.

Inputs:  model_uri (models:/<name>@<alias> or models:/<name>/<version>), input (a file or folder
         prepare can read, or a URI MLflow can download), output (a path, or a URI pandas can
         write through fsspec: Parquet, or CSV when the name ends in .csv), engine, text_column
         (for a text-pair model: its two columns, found by the names it was trained with, or
         `first,second`), batch_size, class_scores.
Engines: pandas: the pyfunc model in this process, messages in length-sorted batches, with a
         progress line. spark: mlflow.pyfunc.spark_udf on a local Spark session (local[*]), or
         on the cluster the SPARK_MASTER variable names. Both write the same output.
Logs:    the input as an MLflow dataset (tag data_digest), rows, messages_per_second, the model
         version used (tags model_name, model_version); when the input carries labels of the
         model's task, the task's metrics (accuracy, precision, recall, f1, macro_f1, roc_auc,
         and each class's precision_/recall_/f1_<label>).
Output:  the output path or URI. Its rows are the input's, in order, with every input column
         kept and predicted_label and score (the probability of that label) added (a multi-label
         model: predicted_tags, each text's list of tags; in a CSV joined by the training data's
         separator); with class_scores, score_<label> too: each class's (tag's) probability.
"""

import datetime
import os
import time
from pathlib import Path

import click
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from steps.core import data
from steps.core.errors import PipelineError
from steps.core.metrics import classification_metrics
from steps.core.task import Task, metric_key
from steps.plumbing import contract, tracking
from steps.plumbing.cli import summary
from steps.plumbing.scoring import CLASS_SCORES, from_spark, load_model, model_task, predict, registered_version
from steps.plumbing.sources import load_raw

HEADLINE = ("accuracy", "precision", "recall", "f1", "macro_f1", "roc_auc")  # printed; each class's figures are logged
CHUNK = 512  # messages per call of the model in the pandas engine: a progress line can follow each


class Progress:
    """A line at most every `every_s` seconds: how many scored, the rate, and the time left."""

    def __init__(self, total: int, every_s: float = 10.0):
        self.total, self.every_s, self.start, self.last = total, every_s, time.monotonic(), time.monotonic()

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every_s or done == self.total:
            self.last, rate = now, done / max(now - self.start, 1e-9)
            click.echo(f"scored {done}/{self.total} messages ({done / self.total:.0%}), {rate:.0f} msg/s, "
                       f"about {datetime.timedelta(seconds=round((self.total - done) / rate))} left")


def model_inputs(table: pd.DataFrame, text_column: str, task: Task):
    """What the model takes of the table: its texts, or a pair task's frame of the two text
    columns under the names the model was trained with."""
    columns = data.find_text_columns(table.columns, text_column or ",".join(task.pair_columns or ()))
    if len(columns) != len(task.pair_columns or ("text",)):
        wanted = "two columns as first,second" if task.pair_columns else "one column"
        raise PipelineError(f"text_column={text_column} names {len(columns)} column(s), the model reads "
                            f"{task.inputs_name}: set text_column to {wanted}")
    values = [data.text_values(table, column) for column in columns]
    if task.pair_columns:
        return pd.concat(values, axis=1).set_axis(list(task.pair_columns), axis=1)
    return values[0].tolist()


def score_with_pandas(model, inputs, batch_size: int, task: Task):
    progress = Progress(len(inputs))

    def predict_batch(sorted_inputs):
        parts = []
        for start in range(0, len(sorted_inputs), CHUNK):
            parts.append(model.predict(sorted_inputs[start:start + CHUNK], params={"batch_size": batch_size}))
            progress.update(min(start + CHUNK, len(sorted_inputs)))
        return pd.concat(parts, ignore_index=True)

    return predict(predict_batch, inputs, task)


def score_with_spark(model_uri: str, inputs, task: Task):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("text-classifier predict")
    if os.environ.get("SPARK_MASTER"):
        builder = builder.master(os.environ["SPARK_MASTER"])
    else:  # a session of this machine alone: every Spark service listens on loopback only
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.master("local[*]")
    spark = builder.getOrCreate()
    try:
        classify = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="array<string>", env_manager="local",
                                           model_config=CLASS_SCORES)
        columns = pd.DataFrame(inputs) if task.pair_columns else pd.DataFrame({"text": inputs})
        frame = spark.createDataFrame(columns.assign(row=range(len(columns))))
        scored = frame.select("row", classify(*columns.columns).alias("scores")).toPandas()
    finally:
        spark.stop()
    probabilities = from_spark(scored.sort_values("row")["scores"], task)
    return task.decide(probabilities), probabilities


def write_table(frame: pd.DataFrame, output: str) -> None:
    if "://" not in output:
        Path(output).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        if output.lower().endswith(".csv"):
            frame.to_csv(output, index=False)
        else:
            frame.to_parquet(output, index=False)
    except (OSError, ValueError, ImportError) as err:
        raise PipelineError(f"cannot write {output} ({str(err).splitlines()[0][:160]}): "
                            "pass a writable path, or a URI pandas can write (s3:// needs s3fs)") from None


@click.command(help=summary(__doc__))
@click.option("--model-uri", default="models:/spam-classifier@champion", show_default=True)
@click.option("--input", required=True, help="A file or folder prepare can read, or a URI.")
@click.option("--output", required=True, help="Where to write: Parquet, or CSV when the name ends in .csv.")
@click.option("--engine", type=click.Choice(["pandas", "spark"]), default="pandas", show_default=True)
@click.option("--text-column", default="", help="Found automatically for known layouts and a pair model's own "
                                               "names; first,second: a pair's two columns.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Messages per forward pass (the pandas engine; Spark uses the model's own).")
@click.option("--class-scores", type=bool, default=False, show_default=True,
              help="Add score_<label>: each class's probability.")
def main(model_uri, input, output, engine, text_column, batch_size, class_scores):  # noqa: A002 (MLproject's name)
    input_uri = input
    with tracking.step_run():
        name, version = registered_version(MlflowClient(), model_uri)
        mlflow.set_tags({"model_name": name, "model_version": str(version)})
        version_uri = f"models:/{name}/{version}"
        task = model_task(version_uri)
        table, source = load_raw(input_uri)
        if table.empty:
            raise PipelineError(f"{input_uri} holds no messages: pass a file with at least one row")
        inputs = model_inputs(table, text_column, task)
        label = data.pick_column(table.columns, "", data.LABEL_COLUMNS, "label", "label_column", required=False)
        dataset = mlflow.data.from_pandas(table, source=source, name=Path(input_uri).name or input_uri)
        mlflow.log_input(dataset, context="predict")
        mlflow.set_tag(contract.DATA_DIGEST_TAG, dataset.digest)

        start = time.perf_counter()
        predicted, probabilities = (score_with_spark(version_uri, inputs, task) if engine == "spark"
                                    else score_with_pandas(load_model(version_uri), inputs, batch_size, task))
        rate = len(inputs) / (time.perf_counter() - start)
        mlflow.log_metrics({"rows": len(inputs), "messages_per_second": rate})
        if task.multi_label:  # a list a text; in a CSV, its tags joined as the training data wrote them
            tags = task.named(predicted)
            scored = table.assign(predicted_tags=[task.label_separator.join(row) for row in tags]
                                  if output.lower().endswith(".csv") else tags)
        else:
            scored = table.assign(predicted_label=task.named(predicted), score=probabilities.max(axis=1))
        if class_scores:
            scored = scored.assign(**{f"score_{metric_key(label)}": probabilities[:, i]
                                      for i, label in enumerate(task.labels)})
        write_table(scored, output)
        summary = f"{len(inputs)} messages scored with {name} version {version} ({engine}, {rate:.0f} msg/s)"
        if label:
            scores = classification_metrics(task, task.targets(task.ids(table[label], input_uri)), predicted,
                                            probabilities)
            mlflow.log_metrics(scores)
            summary += "; against its labels: " + ", ".join(f"{key} {scores[key]:.4f}" for key in HEADLINE
                                                            if key in scores)
        click.echo(summary)
        tracking.set_output(output)


if __name__ == "__main__":
    main()
