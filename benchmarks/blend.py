"""The blend of one finished train run, on its test split: the task's test F1 of the encoder alone,
the lexical model alone and the blend at every weight of the grid, with the weight train picked
(on validation) marked; and each test text's probabilities from both readers, stored as a Parquet
file, so that another weight, a calibration or a threshold is computed again without training.

    python benchmarks/blend.py --checkpoint runs:/<train's run id>/checkpoint --data runs:/<prepare's run id>/data \
        --out /tmp/sms-seed22-test.parquet

Reads the tracking store of MLFLOW_TRACKING_URI (the two URIs are main's summary lines) and logs
nothing. The encoder is the checkpoint in fp32 (torch), read as it was trained.
"""

import sys
from dataclasses import asdict
from pathlib import Path

import click
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's steps, run from anywhere

from steps.core import blend  # noqa: E402
from steps.core.baseline import joined_texts  # noqa: E402
from steps.core.hardware import cpu_description  # noqa: E402
from steps.core.metrics import classification_metrics  # noqa: E402
from steps.core.task import read_task  # noqa: E402
from steps.plumbing import tracking  # noqa: E402
from steps.served import text_classifier  # noqa: E402


@click.command(help=__doc__)
@click.option("--checkpoint", required=True, help="URI of train's output (a run with blend=auto).")
@click.option("--data", required=True, help="URI of the prepare output it was trained on.")
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write the test probabilities.")
def main(checkpoint, data, out):
    folder = Path(tracking.download(checkpoint, "the checkpoint"))
    task = read_task(folder)
    splits = {split: pd.read_parquet(Path(tracking.download(data, "the prepared splits"), f"{split}.parquet"))
              for split in ("train", "test")}
    test = splits["test"]
    pairs = list(test["text_pair"]) if "text_pair" in test else None
    encoder = text_classifier.checkpoint_scorer(str(folder), asdict(task.read_as)).probabilities(
        list(test["text"]), 64, pairs)
    lexical_path = folder / text_classifier.LEXICAL
    lexical_model = (text_classifier.load_lexical(str(lexical_path)) if lexical_path.exists()
                     else blend.fit_lexical(joined_texts(splits["train"]), task.targets(splits["train"]["label"])))
    lexical = lexical_model.predict_proba(joined_texts(test))
    labels = task.targets(test["label"])
    blend.probability_table(task, labels, encoder=encoder, lexical=lexical).to_parquet(out)
    click.echo(f"CPU: {cpu_description()}\n{len(test)} test texts; train picked weight {task.blend_weight:g}; "
               f"test {task.f1_name} and log loss by the lexical model's weight (thresholds as trained):")
    for weight in blend.WEIGHTS:
        _, loss, _ = blend.scored(task, labels, probabilities := text_classifier.blended(encoder, lexical, weight), False)
        f1 = classification_metrics(task, labels, task.decide(probabilities))["f1"]
        click.echo(f"  {weight:.1f}  {f1:.4f}  {loss:.4f}" + ("  <- served" if weight == task.blend_weight else ""))


if __name__ == "__main__":
    main()
