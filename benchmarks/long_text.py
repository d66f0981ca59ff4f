"""Long documents: the main job once per long_text strategy on one data set, model and recipe
(the same split: prepare is reused), then one table of what each costs and scores.

    python benchmarks/manpages_csv.py /tmp/manpages.csv --per-section 150 --max-words 2000
    python benchmarks/long_text.py -P dataset=/tmp/manpages.csv -P text_column=text -P label_column=section \\
        -P model=<all-MiniLM-L6-v2 folder> -P registered_model_name=man-sections ...

Each strategy is one `mlflow run . -e main` (its parent run is named long_text=<strategy>) in the
experiment --experiment-name of the current tracking store. Printed, from those runs: the CPU; for
each strategy, tokenize's training windows and share of texts cut, train's `train_runtime` (the
Trainer's own timer: the epochs and the per-epoch validation, not loading), the test split's
macro F1 (or the task's F1) and accuracy beside the TF-IDF baseline's, validate's
messages_per_second (the registered version scoring the test split in-process, documents not
windows) and its gate's verdict (a later strategy must also beat the champion before it); then
which version is @champion.
"""

import subprocess
import sys
from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project's steps, run from anywhere

from steps.core.hardware import cpu_description  # noqa: E402
from steps.core.reading import LONG_TEXT  # noqa: E402
from steps.plumbing import contract, promotion  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]


def run_main(strategy: str, parameters: tuple[str, ...], experiment: str) -> str:
    """One main job with long_text=strategy; its parent run's id."""
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    run = MlflowClient().create_run(experiment_id, run_name=f"long_text={strategy}")
    command = ["mlflow", "run", str(PROJECT), "--env-manager", "local", "--run-id", run.info.run_id,
               "-P", f"long_text={strategy}", *[item for parameter in parameters for item in ("-P", parameter)]]
    click.echo(f"== long_text={strategy}: {' '.join(command)}", err=True)
    if subprocess.run(command).returncode != 0 and contract.step_tag("validate") not in \
            MlflowClient().get_run(run.info.run_id).data.tags:  # a version the gate rejects is still a row
        raise click.ClickException(f"the main job with long_text={strategy} failed before validate "
                                   f"(run {run.info.run_id})")
    return run.info.run_id


def figures(run_id: str) -> dict:
    """One strategy's row, read back from its runs."""
    client = MlflowClient()
    parent = client.get_run(run_id)
    tokenize, train, register, validate = (client.get_run(parent.data.tags[contract.step_tag(step)])
                                           for step in ("tokenize", "train", "register", "validate"))
    scores = validate.data.metrics
    return {"windows": tokenize.data.metrics["train_windows"], "cut": tokenize.data.metrics["fraction_truncated"],
            "train_s": train.data.metrics["train_runtime"], "f1": scores["test_f1"],
            "accuracy": scores["test_accuracy"], "baseline_f1": scores["baseline_f1"],
            "baseline_accuracy": scores["baseline_accuracy"], "msg_per_s": scores["messages_per_second"],
            "version": register.data.tags[contract.OUTPUT_TAG].rsplit("/", 1)[1],
            "verdict": "passed" if validate.info.status == "FINISHED" else
            validate.data.tags.get(contract.ERROR_TAG, validate.info.status)}


@click.command(help=__doc__)
@click.option("-P", "parameters", multiple=True, help="A main job parameter, key=value (repeatable).")
@click.option("--strategies", default=",".join(LONG_TEXT), show_default=True)
@click.option("--experiment-name", default="long documents", show_default=True)
def main(parameters, strategies, experiment_name):
    name = dict(parameter.split("=", 1) for parameter in parameters if "=" in parameter).get("registered_model_name")
    if not name:  # main's default would put the strategies' versions beside the SMS model's
        raise click.UsageError("-P registered_model_name=<name> is needed: each strategy registers a version of it")
    click.echo(f"CPU: {cpu_description()}")
    rows = {strategy: figures(run_main(strategy, parameters, experiment_name)) for strategy in strategies.split(",")}
    click.echo("\n| long_text | training windows | texts cut | train time | test macro F1 | test accuracy "
               "| baseline macro F1 | baseline accuracy | served msg/s | version | gate |\n|" + "---|" * 11)
    for strategy, row in rows.items():
        click.echo(f"| {strategy} | {row['windows']:.0f} | {row['cut']:.0%} | {row['train_s'] / 60:.1f} min "
                   f"| {row['f1']:.4f} | {row['accuracy']:.4f} | {row['baseline_f1']:.4f} "
                   f"| {row['baseline_accuracy']:.4f} | {row['msg_per_s']:.1f} | {row['version']} | {row['verdict']} |")
    click.echo(f"@champion of {name}: version {promotion.champion_version(MlflowClient(), name)}")


if __name__ == "__main__":
    main()
