"""main: run prepare -> tokenize -> [tune ->] train -> register -> validate as nested runs of one parent.

With --tune-trials N (N > 0) an Optuna search runs between tokenize and train, and train
uses the best learning rate, batch size, epochs, warmup and weight decay it found.

Each step runs through mlflow.projects.run in this run's experiment, as a child of this run;
the output URI it records (tag `output_uri`) is the next step's input. The parent records
each step's run id, whether it was reused, the registered version and the validation
metrics. A failing step fails the parent and stops the chain.

Reuse (steps/plumbing/reuse.py): a step is not run again when a FINISHED run of the same entry
point exists in the experiment with the same resolved parameters, made from the same commit with
a clean tree, and this checkout is clean too. `--use-cache false` turns it off.
"""

import dataclasses
import json
from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient

from steps.core import baseline, blend, gate, hub
from steps.core.reading import Reading
from steps.core.recipe import SEARCHED, Recipe
from steps.core.specs import Gate, Preparation, Serving, as_params
from steps.core.task import read_task
from steps.plumbing import contract, promotion, reuse, tracking
from steps.plumbing.cli import process_options, spec_from, spec_options, summary
from steps.plumbing.evaluation import PROJECT_NAMES

# how train spreads over processes and machines, and whether it resumes a killed run
TRAIN_RUNTIME = ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port", "resume")


def run_pipeline(params: dict, experiment_id: str) -> dict:
    """The steps in order (tune only when trials are asked for), each fed the previous outputs;
    their finished runs by name."""
    runs = {}
    commit = reuse.reuse_commit(params["use_cache"])

    def step(name, **parameters):
        runs[name] = reuse.run_step(name, parameters, experiment_id, commit)
        return runs[name].data.tags[contract.OUTPUT_TAG]

    # train's device: the same machine's GPU when there is one, unless the pipeline is told "cpu"
    recipe = spec_from(Recipe, params, device="cpu" if params["device"] == "cpu" else "auto")
    recipe.check()  # before any step runs
    data = step("prepare", dataset=params["dataset"], **as_params(spec_from(Preparation, params)), seed=recipe.seed)
    check_fits_the_task(data, recipe, params["checks"])
    tokenized = step("tokenize", data=data, model=params["model"], **as_params(spec_from(Reading, params)))
    if params["tune_trials"] > 0:
        fixed = {key: value for key, value in as_params(recipe).items() if key not in SEARCHED}
        best = step("tune", tokenized=tokenized, model=params["model"], trials=params["tune_trials"],
                    tune_storage=params["tune_storage"], **fixed)
        recipe = dataclasses.replace(recipe, **json.loads(Path(tracking.download(best, "the search's best "
                                                                                      "parameters")).read_text()))
    checkpoint = step("train", tokenized=tokenized, model=params["model"], **as_params(recipe),
                      **{key: str(params[key]).lower() for key in TRAIN_RUNTIME})
    model_uri = step("register", checkpoint=checkpoint, registered_model_name=params["registered_model_name"],
                     **as_params(spec_from(Serving, params, device=params["device"])))
    step("validate", model_uri=model_uri, test_data=contract.split_uri(data, "test"),
         train_data=contract.split_uri(data, "train"), **as_params(spec_from(Gate, params)))
    return runs


def check_fits_the_task(data: str, recipe: Recipe, checks: str) -> None:
    """What only the task prepare read can tell: thresholds=tuned needs tags, and a checks file the task's
    labels; each a one-line error before anything is trained or registered."""
    task = read_task(Path(tracking.download(f"{data}/{contract.TASK_FILE}", "the task")).parent)
    recipe.for_task(task.multi_label)  # its one-line error; train resolves auto itself
    if checks:
        gate.read_checks(checks, task)


def short_name(name: str) -> str:
    """A Hub id's name, or a folder's last two parts (a model folder is often just `model`)."""
    parts = [part for part in name.rstrip("/").split("/") if part]
    return "/".join(parts[-2:]) if hub.looks_like_path(name) else parts[-1]


def run_name(params: dict) -> str:
    """What the parent run shows in the UI: the model, the data and the training length."""
    epochs = float(params["epochs"])
    return (f"{short_name(params['model'])} on {short_name(params['dataset'])}, "
            f"{epochs:g} epoch{'' if epochs == 1 else 's'}, seed {params['seed']}")


def pipeline_summary(runs: dict, params: dict, parent_run_id: str) -> str:
    name = params["registered_model_name"]
    lines = ["", "Pipeline finished:"]
    lines += [f"  {step:<9} run {run.info.run_id}  -> {run.data.tags[contract.OUTPUT_TAG]}"
              + ("  (reused)" if run.data.tags.get(contract.PARENT_TAG) != parent_run_id else "")
              for step, run in runs.items()]
    if "blend_weight" in runs["train"].data.metrics:
        lines.append("  served: " + blend.Choice.from_metrics(runs["train"].data.metrics).described("F1"))
    scores = runs["validate"].data.metrics
    lines.append("  test: " + ", ".join(f"{key} {scores[f'test_{key}']:.4f}" for key in PROJECT_NAMES
                                        if f"test_{key}" in scores))
    if "baseline_f1" in scores:
        lines.append(f"  baseline ({baseline.NAME}): accuracy {scores['baseline_accuracy']:.4f}, "
                     f"f1 {scores['baseline_f1']:.4f}")
    classes = [key[len("test_f1_"):] for key in sorted(scores) if key.startswith("test_f1_") and key != "test_f1_score"]
    lines.append("  each label's F1, version / baseline: " + ", ".join(
        f"{label} {scores[f'test_f1_{label}']:.4f} / {scores.get(f'baseline_f1_{label}', float('nan')):.4f}"
        for label in classes))
    champion = promotion.champion_version(MlflowClient(), name)  # may be another passed version with a higher F1
    lines.append(f"  {runs['register'].data.tags[contract.OUTPUT_TAG]} is @candidate; @champion is version {champion}")
    lines.append(f"Serve it:  mlflow models serve -m models:/{name}@champion --env-manager local -p 5001")
    return "\n".join(lines)


@click.command(help=summary(__doc__))
@click.option("--dataset", default=hub.DEFAULT_DATASET, show_default=True,
              help="A Hub data set id, a local file or folder, or a URI MLflow can download.")
@spec_options(Preparation)
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True, help="A Hub model id or a local folder.")
@spec_options(Reading)
@spec_options(Recipe, exclude=("device",))
@spec_options(Serving, exclude=("device",))
@click.option("--registered-model-name", default="spam-classifier", show_default=True)
@click.option("--device", default="auto", show_default=True,
              help="cpu: train and serve on the CPU; auto: a GPU where there is one; cuda:N, mps: register's device.")
@spec_options(Gate)
@click.option("--tune-trials", type=click.IntRange(min=0), default=0, show_default=True,
              help="Optuna trials before train; 0: no search.")
@click.option("--tune-storage", default="", help="Optuna RDB storage URL for the search; empty: in memory.")
@click.option("--use-cache", type=bool, default=True, show_default=True, help="Reuse finished identical steps.")
@process_options
@click.option("--resume", type=bool, default=True, show_default=True,
              help="train goes on from a killed run's last epoch.")
def main(**params):
    with tracking.step_run() as parent:
        if tracking.is_generated_name(parent.info.run_name):  # keep a name given with --run-name
            mlflow.set_tag(contract.RUN_NAME_TAG, run_name(params))
        for run_id in tracking.mark_dead_runs_killed(parent.info.experiment_id):
            click.echo(f"run {run_id} was left RUNNING by a process that is gone: marked KILLED")
        runs = run_pipeline(params, parent.info.experiment_id)
        validate = runs["validate"]
        mlflow.log_metrics({key: value for key, value in validate.data.metrics.items()
                            if key.startswith(("test_", "baseline_"))})
        mlflow.set_tag(contract.REGISTERED_MODEL_TAG, runs["register"].data.tags[contract.OUTPUT_TAG])
        click.echo(pipeline_summary(runs, params, parent.info.run_id))


if __name__ == "__main__":
    main()
