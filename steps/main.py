"""main: run prepare -> tokenize -> train -> register -> validate as nested runs of one parent.

Each step runs through mlflow.projects.run in this run's experiment, as a child of this run;
the output URI it records (tag `output_uri`) is the next step's input. The parent records
each step's run id, the registered version and the validation metrics. A failing step
fails the parent and stops the chain.
"""

from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient

from steps import tracking
from steps.errors import PipelineError

PROJECT_DIR = str(Path(__file__).resolve().parent.parent)


def run_step(entry_point: str, parameters: dict, experiment_id: str):
    """Run one entry point as a child of the active run; the finished child run."""
    click.echo(f"== {entry_point}")
    submitted = mlflow.projects.run(PROJECT_DIR, entry_point=entry_point, parameters=parameters,
                                    experiment_id=experiment_id, env_manager="local", synchronous=False)
    succeeded = submitted.wait()
    child = MlflowClient().get_run(submitted.run_id)
    mlflow.set_tag(f"{entry_point}_run_id", submitted.run_id)
    if not succeeded:
        reason = child.data.tags.get(tracking.ERROR_TAG, "see its output above")
        raise PipelineError(f"step {entry_point} failed (run {submitted.run_id}): {reason}")
    return child


def run_pipeline(params: dict, experiment_id: str) -> dict:
    """The five steps in order, each fed the previous outputs; their finished runs by name."""
    runs = {}

    def step(name, **parameters):
        runs[name] = run_step(name, parameters, experiment_id)
        return runs[name].data.tags[tracking.OUTPUT_TAG]

    data = step("prepare", dataset=params["dataset"], text_column=params["text_column"],
                label_column=params["label_column"], test_size=params["test_size"],
                validation_size=params["validation_size"], seed=params["seed"])
    tokenized = step("tokenize", data=data, model=params["model"], max_length=params["max_length"])
    checkpoint = step("train", tokenized=tokenized, model=params["model"], epochs=params["epochs"],
                      batch_size=params["batch_size"], learning_rate=params["learning_rate"],
                      weight_decay=params["weight_decay"], warmup_ratio=params["warmup_ratio"], seed=params["seed"])
    model_uri = step("register", checkpoint=checkpoint, registered_model_name=params["registered_model_name"],
                     batch_size=params["batch_size"], device=params["device"])
    step("validate", model_uri=model_uri, test_data=f"{data}/test.parquet", min_accuracy=params["min_accuracy"],
         min_f1=params["min_f1"], checks=params["checks"])
    return runs


def summary(runs: dict, params: dict) -> str:
    name = params["registered_model_name"]
    lines = ["", "Pipeline finished:"]
    lines += [f"  {step:<9} run {run.info.run_id}  -> {run.data.tags[tracking.OUTPUT_TAG]}" for step, run in runs.items()]
    scores = runs["validate"].data.metrics
    lines.append("  test: " + ", ".join(f"{key[5:]} {value:.4f}" for key, value in sorted(scores.items())
                                        if key.startswith("test_")))
    lines.append(f"  {runs['register'].data.tags[tracking.OUTPUT_TAG]} is @candidate and @champion")
    lines.append(f"Serve it:  mlflow models serve -m models:/{name}@champion --env-manager local -p 5001")
    return "\n".join(lines)


@click.command(help=__doc__)
@click.option("--dataset", default="sms_spam", show_default=True)
@click.option("--text-column", default="")
@click.option("--label-column", default="")
@click.option("--test-size", default="0.2", show_default=True)
@click.option("--validation-size", default="0.1", show_default=True)
@click.option("--model", default="distilbert-base-uncased", show_default=True)
@click.option("--max-length", default="128", show_default=True)
@click.option("--epochs", default="3", show_default=True)
@click.option("--batch-size", default="8", show_default=True)
@click.option("--learning-rate", default="5e-5", show_default=True)
@click.option("--weight-decay", default="0.0", show_default=True)
@click.option("--warmup-ratio", default="0.0", show_default=True)
@click.option("--seed", default="22", show_default=True)
@click.option("--registered-model-name", default="spam-classifier", show_default=True)
@click.option("--device", default="auto", show_default=True)
@click.option("--min-accuracy", default="0.95", show_default=True)
@click.option("--min-f1", default="0.85", show_default=True)
@click.option("--checks", default="", help="Behaviour checks file; empty: the tutorial's two messages.")
def main(**params):
    # Values pass through as strings: each step's own options parse and check them.
    with tracking.step_run() as parent:
        runs = run_pipeline(params, parent.info.experiment_id)
        validate = runs["validate"]
        mlflow.log_metrics({key: value for key, value in validate.data.metrics.items() if key.startswith("test_")})
        mlflow.set_tag("registered_model_uri", runs["register"].data.tags[tracking.OUTPUT_TAG])
        click.echo(summary(runs, params))


if __name__ == "__main__":
    main()
