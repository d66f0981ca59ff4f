"""A multi-label version on its test split, as the README's table shows it: macro and micro F1,
subset accuracy and Hamming loss at 0.5 for every tag and at the thresholds the version was
trained with (thresholds=tuned: what tuning changes, from one training), beside the one-vs-rest
TF-IDF baseline's; then the five best and five worst tags by the version's F1.

    python benchmarks/tags.py --model-uri models:/debtags/1 --data runs:/<prepare's run id>/data

Reads the tracking store of MLFLOW_TRACKING_URI; scores in this process (the served format's own
scoring, as validate does) and logs nothing.
"""

import dataclasses
import sys
from pathlib import Path

import click
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's steps, run from anywhere

from steps.core import baseline  # noqa: E402
from steps.core.hardware import cpu_description  # noqa: E402
from steps.core.metrics import classification_metrics  # noqa: E402
from steps.core.task import metric_key  # noqa: E402
from steps.plumbing import tracking  # noqa: E402
from steps.plumbing.scoring import load_model, model_task, predict  # noqa: E402

SHOWN = ("f1", "micro_f1", "accuracy", "hamming_loss")
NAMES = {"f1": "macro F1", "micro_f1": "micro F1", "accuracy": "subset accuracy", "hamming_loss": "Hamming loss"}


@click.command(help=__doc__)
@click.option("--model-uri", required=True, help="A registered multi-label version, models:/<name>/<version>.")
@click.option("--data", required=True, help="URI of the prepare output it was trained on.")
def main(model_uri, data):
    task = model_task(model_uri)
    if not task.multi_label:
        raise click.ClickException(f"{model_uri} answers one label a text: pass a multi-label version")
    folder = Path(tracking.download(data, "the prepared splits"))
    train, test = (pd.read_parquet(folder / f"{split}.parquet") for split in ("train", "test"))
    labels = task.targets(test["label"])
    _, probabilities = predict(load_model(model_uri).predict, task.model_input(test), task)
    at_half = dataclasses.replace(task, thresholds=None)
    rows = {"served, 0.5 a tag": classification_metrics(task, labels, at_half.decide(probabilities), probabilities),
            "served, its thresholds": classification_metrics(task, labels, task.decide(probabilities),
                                                                 probabilities),
            "TF-IDF + linear SVM, one a tag": classification_metrics(
                task, labels, *baseline.baseline_predictions(train, test, task))}
    click.echo(f"CPU: {cpu_description()}\n{len(test)} test texts, {len(task.labels)} tags; thresholds "
               + (", ".join(f"{tag} {cut:g}" for tag, cut in zip(task.labels, task.cutoffs))
                  if task.thresholds else "0.5 (not tuned)"))
    click.echo("\n| | " + " | ".join(NAMES[key] for key in SHOWN) + " |\n|---|" + "---|" * len(SHOWN))
    for name, scores in rows.items():
        click.echo(f"| {name} | " + " | ".join(f"{scores[key]:.4f}" for key in SHOWN) + " |")
    version, base = rows["served, its thresholds"], rows["TF-IDF + linear SVM, one a tag"]
    ranked = sorted(task.labels, key=lambda tag: version[f"f1_{metric_key(tag)}"], reverse=True)
    click.echo("\n| tag (test texts) | F1 | baseline F1 |\n|---|---|---|")
    for tag in ranked[:5] + ranked[-5:] if len(ranked) > 10 else ranked:
        key = f"f1_{metric_key(tag)}"
        click.echo(f"| `{tag}` ({labels[:, task.labels.index(tag)].sum()}) | {version[key]:.4f} | {base[key]:.4f} |")


if __name__ == "__main__":
    main()
