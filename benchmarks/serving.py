"""Serving benchmark: one checkpoint served by `mlflow models serve` as register logged it before
(fp32 weights, batch 64) and as it logs it now (register's defaults: the dtype this hardware
computes natively, the measured batch size), on the same machine in one run.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db python benchmarks/serving.py \
        --checkpoint runs:/<train run id>/checkpoint --data ../shared/data/sms_spam/SMSSpamCollection

Prints, for each way of logging:
- messages/s of one request of the file's first 1,024 messages (best of 3 requests), answered by
  the served model, JSON in and out;
- the p50 and p95 latency of 50 requests of one message each;
and, for the way register logs now, messages/s of the 1,024 messages in-process at each batch size
(what the default batch size was chosen from).
"""

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import click
import mlflow
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's steps, run from anywhere

from steps import register  # noqa: E402
from steps.shared import data  # noqa: E402

REQUEST = 1024         # messages in the large request
SINGLES = 50           # one-message requests for the latency figures
BATCH_SIZES = (8, 16, 32, 64, 128)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(model_folder: str):
    """`mlflow models serve` of a saved model on a free loopback port; its base URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", model_folder,
                               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT": "600"})  # 60 s by default
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=2).close()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f"mlflow models serve of {model_folder} did not start") from None
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)


def ask(url: str, texts: list[str]) -> float:
    """Seconds for one scoring request of `texts`."""
    body = pd.Series(texts).to_json(orient="values").encode()
    request = urllib.request.Request(f"{url}/invocations", data=b'{"inputs": ' + body + b"}",
                                     headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = response.read()
    elapsed = time.perf_counter() - start
    assert answer.count(b'"label"') == len(texts), answer[:300]
    return elapsed


def measure_served(url: str, texts: list[str]) -> dict:
    ask(url, texts[:64])  # warm-up
    rate = max(len(texts) / ask(url, texts) for _ in range(3))
    latencies = sorted(ask(url, [text]) * 1000 for text in texts[:SINGLES])
    quantiles = statistics.quantiles(latencies, n=20)  # 5% steps: [9] is p50, [18] is p95
    return {"msg/s": rate, "p50 ms": quantiles[9], "p95 ms": quantiles[18]}


def batch_size_sweep(model_folder: str, texts: list[str]) -> dict[int, float]:
    """messages/s of the loaded pipeline on `texts`, in their order, at each batch size."""
    classifier = mlflow.transformers.load_model(model_folder)
    classifier(texts[:64], batch_size=16)  # warm-up
    rates = {}
    for batch_size in BATCH_SIZES:
        start = time.perf_counter()
        classifier(texts, batch_size=batch_size)
        rates[batch_size] = len(texts) / (time.perf_counter() - start)
    return rates


@click.command(help=__doc__)
@click.option("--checkpoint", required=True, help="URI of train's output (a registered version's checkpoint_uri tag).")
@click.option("--data", "data_path", required=True, help="The UCI SMS Spam Collection file.")
def main(checkpoint, data_path):
    texts = data.normalise(data.read_table(data_path, "data"))["text"].head(REQUEST).tolist()
    folder = mlflow.artifacts.download_artifacts(checkpoint)
    dtype, batch_size = register.serving_dtype("auto", "auto"), register.BATCH_SIZE
    ways = {"before (fp32, batch 64)": ("fp32", 64), f"now (register's defaults: {dtype}, batch {batch_size})":
            (dtype, batch_size)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, (name, (dtype, size)) in enumerate(ways.items()):
            model_folder = str(Path(tmp, f"model{n}"))
            classifier = register.build_pipeline(folder, size, "auto")
            mlflow.transformers.save_model(path=model_folder,
                                           **register.model_arguments(classifier, size, "auto", dtype))
            with served(model_folder) as url:
                results[name] = measure_served(url, texts)
            print(f"{name}: " + ", ".join(f"{key} {value:.1f}" for key, value in results[name].items()), flush=True)
        sweep = batch_size_sweep(model_folder, texts)
    print(f"\n| served model | {REQUEST}-message request, msg/s | single message p50 ms | p95 ms |\n|---|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {figures['msg/s']:.0f} | {figures['p50 ms']:.1f} | {figures['p95 ms']:.1f} |")
    before, now = results.values()
    print(f"\nspeed-up on the {REQUEST}-message request: {now['msg/s'] / before['msg/s']:.1f}x")
    print("in-process, the way register logs now, by batch size (msg/s): "
          + ", ".join(f"{size}: {rate:.0f}" for size, rate in sweep.items()))


if __name__ == "__main__":
    main()
