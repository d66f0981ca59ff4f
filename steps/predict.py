"""predict: score every message of a file, folder or URI with a registered model, in batch.

Inputs:  model_uri (models:/<name>@<alias> or models:/<name>/<version>), input (a file or folder
         prepare can read, or a URI MLflow can download), output (a path, or a URI pandas can
         write through fsspec: Parquet, or CSV when the name ends in .csv), engine, text_column,
         batch_size.
Engines: pandas: the pyfunc model in this process, messages in length-sorted batches, with a
         progress line. spark: mlflow.pyfunc.spark_udf on a local Spark session (local[*]), or
         on the cluster the SPARK_MASTER variable names. Both write the same output.
Logs:    the input as an MLflow dataset (tag data_digest), rows, messages_per_second, the model
         version used (tags model_name, model_version); accuracy, precision, recall, f1 and
         roc_auc when the input carries labels.
Output:  the output path or URI. Its rows are the input's, in order, with every input column
         kept and predicted_label and spam_probability added.
"""

import datetime
import os
import time
from pathlib import Path

import click
import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

from steps.shared import data, tracking
from steps.shared.errors import PipelineError
from steps.shared.metrics import classification_metrics
from steps.shared.scoring import label_ids_and_spam_probability, load_model, predict, registered_version
from steps.shared.sources import load_raw

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


def score_with_pandas(model_uri: str, texts: list[str], batch_size: int):
    model = load_model(model_uri)
    progress = Progress(len(texts))

    def predict_batch(sorted_texts):
        parts = []
        for start in range(0, len(sorted_texts), CHUNK):
            parts.append(model.predict(sorted_texts[start:start + CHUNK], params={"batch_size": batch_size}))
            progress.update(min(start + CHUNK, len(sorted_texts)))
        return pd.concat(parts, ignore_index=True)

    return predict(predict_batch, texts)


def score_with_spark(model_uri: str, texts: list[str]):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("spam-classifier predict")
    if os.environ.get("SPARK_MASTER"):
        builder = builder.master(os.environ["SPARK_MASTER"])
    else:  # a session of this machine alone: every Spark service listens on loopback only
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = builder.master("local[*]")
    spark = builder.getOrCreate()
    try:
        classify = mlflow.pyfunc.spark_udf(spark, model_uri, result_type="label string, score double",
                                           env_manager="local")
        frame = spark.createDataFrame(pd.DataFrame({"row": range(len(texts)), "text": texts}))
        scored = frame.select("row", classify("text").alias("prediction")) \
            .select("row", "prediction.label", "prediction.score").toPandas()
    finally:
        spark.stop()
    return label_ids_and_spam_probability(scored.sort_values("row").reset_index(drop=True))


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


@click.command(help=__doc__)
@click.option("--model-uri", default="models:/spam-classifier@champion", show_default=True)
@click.option("--input", required=True, help="A file or folder prepare can read, or a URI.")
@click.option("--output", required=True, help="Where to write: Parquet, or CSV when the name ends in .csv.")
@click.option("--engine", type=click.Choice(["pandas", "spark"]), default="pandas", show_default=True)
@click.option("--text-column", default="", help="Found automatically for known layouts.")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True,
              help="Messages per forward pass (the pandas engine; Spark uses the model's own).")
def main(model_uri, input, output, engine, text_column, batch_size):  # noqa: A002 (the MLproject's name)
    input_uri = input
    with tracking.step_run():
        name, version = registered_version(MlflowClient(), model_uri)
        mlflow.set_tags({"model_name": name, "model_version": str(version)})
        table, source = load_raw(input_uri)
        text = data.pick_column(table.columns, text_column, data.TEXT_COLUMNS, "text", "text_column")
        label = data.pick_column(table.columns, "", data.LABEL_COLUMNS, "label", "label_column", required=False)
        if table.empty:
            raise PipelineError(f"{input_uri} holds no messages: pass a file with at least one row")
        texts = table[text].fillna("").astype(str).tolist()
        dataset = mlflow.data.from_pandas(table, source=source, name=Path(input_uri).name or input_uri)
        mlflow.log_input(dataset, context="predict")
        mlflow.set_tag(tracking.DATA_DIGEST_TAG, dataset.digest)

        start = time.perf_counter()
        version_uri = f"models:/{name}/{version}"
        predicted, spam_probability = (score_with_spark(version_uri, texts) if engine == "spark"
                                       else score_with_pandas(version_uri, texts, batch_size))
        rate = len(texts) / (time.perf_counter() - start)
        mlflow.log_metrics({"rows": len(texts), "messages_per_second": rate})
        names = {i: label_name for label_name, i in data.LABELS.items()}
        write_table(table.assign(predicted_label=[names[p] for p in predicted], spam_probability=spam_probability),
                    output)
        summary = f"{len(texts)} messages scored with {name} version {version} ({engine}, {rate:.0f} msg/s)"
        if label:
            scores = classification_metrics(data.normalise_labels(table[label]), predicted, spam_probability)
            mlflow.log_metrics(scores)
            summary += "; against its labels: " + ", ".join(f"{key} {value:.4f}" for key, value in scores.items())
        click.echo(summary)
        tracking.set_output(output)


if __name__ == "__main__":
    main()
