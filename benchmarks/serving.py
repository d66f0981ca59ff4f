"""Serving benchmark: one checkpoint served by `mlflow models serve` in each serving format, on the
same machine and the same messages, in one run.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db python benchmarks/serving.py \
        --checkpoint runs:/<train run id>/checkpoint --test-data runs:/<prepare run id>/data/test.parquet \
        --data ../shared/data/sms_spam/SMSSpamCollection

The ways of scoring:
- reference: the checkpoint's plain text-classification pipeline, fp32, batches of 64 in input
  order, in-process (no server): the labels the others are compared with;
- transformers: served as register logs it (register.model_arguments: bf16 where this CPU
  computes it natively, batch 16);
- onnx, onnx-int8: served as register logs them (steps.plumbing.serving.log_served_model, batch 16);
- server alone: a model that answers at once, served the same way: what the scoring server
  (HTTP, JSON, MLflow's input and output conversion) costs by itself.
Prints the CPU's model name and its bf16, AMX and VNNI (int8) flags, then for each way:
messages/s of one request of the data file's first 1,024 messages (best of 3), JSON in and out;
the p50 and p95 latency of 50 requests of one message each; on prepare's test split (one
request): agreement, the fraction of its messages answered with the reference's label, and the
task's F1 (spam F1 for the SMS data); the server alone is timed only.
Logs the served models into a run of the experiment "serving benchmark", and the figures as its
metrics (<way>_msg_per_s, <way>_p50_ms, <way>_p95_ms, <way>_agreement, <way>_test_f1).
"""

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import mlflow
import pandas as pd
import torch
from transformers import pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's steps, run from anywhere

from steps import register  # noqa: E402
from steps.core import data  # noqa: E402
from steps.core.hardware import cpu_description  # noqa: E402
from steps.core.specs import Serving  # noqa: E402
from steps.core.metrics import classification_metrics  # noqa: E402
from steps.core.task import FILE as TASK_FILE, Task, read_task  # noqa: E402
from steps.plumbing import serving  # noqa: E402

BATCH_SIZE = Serving.serving_batch_size  # as register logs the served model
REQUEST = 1024         # messages in the large request
SINGLES = 50           # one-message requests for the latency figures
REFERENCE_BATCH = 64
FLOOR = "server alone (a model answering its first label)"
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(model_uri: str):
    """`mlflow models serve` of a logged model on a free loopback port; its base URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
                               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(),
                                   "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "600"})  # 60 s by default
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"mlflow models serve of {model_uri} did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def ask(url: str):
    """A scorer of texts by one request each to the server at `url`: their labels."""
    def score(texts: list[str]) -> list[str]:
        request = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": texts}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            return [row["label"] for row in json.loads(response.read())["predictions"]]
    return score


def measure(score, texts: list[str]) -> dict:
    """messages/s of all `texts` in one call (best of 3) and p50/p95 ms of one-text calls."""
    score(texts[:64])  # warm-up
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        score(texts)
        seconds.append(time.perf_counter() - start)
    latencies = []
    for text in texts[:SINGLES]:
        start = time.perf_counter()
        score([text])
        latencies.append((time.perf_counter() - start) * 1000)
    quantiles = statistics.quantiles(latencies, n=20)  # 5% steps: [9] is p50, [18] is p95
    return {"msg_per_s": len(texts) / min(seconds), "p50_ms": quantiles[9], "p95_ms": quantiles[18]}


def on_test(labels: list[str], reference_labels: list[str], test: pd.DataFrame, task: Task) -> dict:
    """Agreement with the reference's labels on the test split, and the task's F1 against its labels."""
    agreement = sum(a == b for a, b in zip(labels, reference_labels)) / len(test)
    f1 = classification_metrics(task, test["label"], task.ids(pd.Series(labels), "the answers"))["f1"]
    return {"agreement": agreement, "test_f1": f1}


class FirstLabel(mlflow.pyfunc.PythonModel):
    """Answers every text with the first label at once: what `mlflow models serve` costs by itself."""

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return pd.DataFrame({"label": [context.model_config["label"]] * len(model_input), "score": 1.0})


def log_models(folder: str) -> dict[str, str]:
    """The checkpoint logged in each served format into the active run: model URIs by name."""
    dtype = register.serving_dtype("auto", "auto")
    classifier = register.build_pipeline(folder, BATCH_SIZE, "auto")
    arguments = register.model_arguments(classifier, read_task(folder), BATCH_SIZE, "auto", dtype)
    transformers_info = mlflow.transformers.log_model(name="transformers", **arguments)
    uris = {f"transformers ({dtype}, batch {BATCH_SIZE})": transformers_info.model_uri}
    for name in ("onnx", "onnx-int8"):
        uris[f"{name} (batch {BATCH_SIZE})"] = serving.log_served_model(
            folder, name, read_task(folder), BATCH_SIZE, name=name).model_uri
    uris[FLOOR] = mlflow.pyfunc.log_model(name="server-alone", python_model=FirstLabel(),
                                          signature=serving.signature(BATCH_SIZE, read_task(folder)),
                                          model_config={"label": read_task(folder).labels[0]},
                                          input_example=list(serving.INPUT_EXAMPLE),
                                          pip_requirements=["mlflow"]).model_uri
    return uris


@click.command(help=__doc__)
@click.option("--checkpoint", required=True, help="URI or folder of train's output (a registered version's "
                                                  "checkpoint_uri tag).")
@click.option("--test-data", required=True, help="URI of prepare's test.parquet (task.json beside it) for the "
                                                 "run that trained the checkpoint.")
@click.option("--data", "data_path", required=True, help="A UCI label<TAB>text file, e.g. the SMS Spam Collection.")
def main(checkpoint, test_data, data_path):
    click.echo(f"CPU: {cpu_description()}")
    texts = data.normalise(data.read_table(data_path, "data"))[0]["text"].head(REQUEST).tolist()
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(test_data))
    task = read_task(Path(mlflow.artifacts.download_artifacts(test_data.rsplit("/", 1)[0] + f"/{TASK_FILE}")).parent)
    folder = mlflow.artifacts.download_artifacts(checkpoint)
    reference = pipeline("text-classification", model=folder, dtype=torch.float32, batch_size=REFERENCE_BATCH,
                         device="cpu")

    def reference_score(batch: list[str]) -> list[str]:
        return [row["label"] for row in reference(batch)]

    reference_labels = reference_score(test["text"].tolist())
    results = {f"reference (in-process, fp32, batch {REFERENCE_BATCH})":
               {**measure(reference_score, texts), **on_test(reference_labels, reference_labels, test, task)}}
    mlflow.set_experiment("serving benchmark")
    with mlflow.start_run():
        for name, model_uri in log_models(folder).items():
            with served(model_uri) as url:
                score = ask(url)
                results[name] = measure(score, texts)
                if name != FLOOR:
                    results[name].update(on_test(score(test["text"].tolist()), reference_labels, test, task))
            click.echo(f"{name}: " + ", ".join(f"{key} {value:.4f}" for key, value in results[name].items()))
        mlflow.log_metrics({f"{name.split()[0]}_{key}": value for name, figures in results.items()
                            for key, value in figures.items()})
    click.echo(f"\n| way | {REQUEST}-message request, msg/s | single message p50 ms | p95 ms | test split "
               f"({len(test)}): agreement with the reference | test {task.f1_name} |\n|---|---|---|---|---|---|")
    for name, figures in results.items():
        on_split = (f"{figures['agreement']:.4f} | {figures['test_f1']:.4f}" if "agreement" in figures else "– | –")
        click.echo(f"| {name} | {figures['msg_per_s']:.0f} | {figures['p50_ms']:.1f} | {figures['p95_ms']:.1f} | "
                   f"{on_split} |")


if __name__ == "__main__":
    main()
