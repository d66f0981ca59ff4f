"""train: fine-tune a pretrained transformer on the tokenized splits with the HF Trainer.

Inputs:  tokenized (URI of tokenize's output), model (Hub id or local folder), the recipe
         (steps/core/recipe.py: epochs, batch_size, learning_rate, weight_decay, warmup_ratio,
         seed, precision, group_by_length, eval_batch_size, device, class_weights, thresholds,
         early_stopping_patience); to scale out (accelerate's
         names): num_processes (all machines together), num_machines, machine_rank,
         main_process_ip, main_process_port. More than one process: the training runs
         data-parallel through torch.distributed's launcher; machine 0 logs the one run.
         resume: go on from the last epoch of an unfinished run with the same params and commit.
Logs:    epochs_run (fewer than epochs when early_stopping_patience stopped it), best_epoch;
         with thresholds=tuned (multi-label), threshold_<tag>, also stored in the checkpoint's task.json;
         with blend=auto (steps/core/blend.py), blend_weight (the lexical model's share of the served
         probabilities, also in task.json), validation_f1_encoder, validation_f1_lexical and
         validation_f1_blend, and validation_probabilities.json (each validation text's label and
         both readers' probabilities: a blend or a calibration computed again without training);
         per-step training loss and learning rate; per-epoch validation loss, accuracy, the
         task's precision, recall and F1 (the positive class's, or macro), macro_f1, each class's
         precision_/recall_/f1_<label> and ROC AUC (through the Trainer's MLflow callback);
         training_args.json; param effective_batch_size; tag precision; system metrics (CPU,
         memory; GPU given nvidia-ml-py); while it trains, resumable/epoch-<n>/ (the latest epoch's
         full Trainer checkpoint, tag resumable_epoch; dropped at the end); tags resumed_from_run_id
         and resumed_from_epoch when it resumed; artifact checkpoint/ with the best epoch by the
         task's validation F1 (safetensors weights, config with id2label/label2id, tokenizer, task.json,
         README.md: the model card with the base model, the task, the recipe, epochs run, the best
         epoch, time and machine added: the folder is a Hub model folder), and lexical.joblib,
         the blend's lexical model, when its weight is above 0.
Output:  runs:/<run id>/checkpoint
"""

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import click
import joblib
import mlflow
import pandas as pd

from steps.core import blend, card, hardware, hub
from steps.core.errors import PipelineError
from steps.core.recipe import Recipe
from steps.core.specs import as_params
from steps.core.metrics import tuned_thresholds
from steps.core.task import metric_key, read_task, write_task
from steps.core.training import epochs_run, fine_tune, read_tokenized, tokenized_task, validation_probabilities
from steps.plumbing import contract, environment, launch, resumable, tracking
from steps.plumbing.cli import process_options, spec_from, spec_options, summary
from steps.served.text_classifier import LEXICAL

# The Trainer's MLflow callback would log every TrainingArguments field as a param, and
# clash with this step's own params (`learning_rate` "5e-5" vs "5e-05"); the full
# arguments go to training_args.json instead.
os.environ.setdefault("MLFLOW_MAX_LOG_PARAMS", "0")


def train_process(folder: str, model_name: str, output_dir: str, recipe: Recipe,
                  resume_from: str | None, step_run: tuple[str, str] | None = None) -> dict | None:
    """One training process: fine-tune (from a resumable checkpoint, when given one), logging each
    epoch's resumable checkpoint, and save the best epoch, with the task, to output_dir/checkpoint.

    With several processes each runs this; only the first logs to MLflow (it joins step_run, the
    step's tracking URI and run id) and saves, and only it returns what the step logs."""
    datasets, tokenizer, task = read_tokenized(Path(folder))
    first = int(os.environ.get("RANK", "0")) == 0  # the launcher's global rank
    with tracking.joined_run(step_run if first else None):
        trainer = fine_tune(datasets, tokenizer, model_name, task, str(Path(output_dir, "trainer")), recipe,
                            report_to="mlflow", callbacks=(resumable.LogEachEpoch(),), resume_from=resume_from)
    checkpoint = Path(output_dir, contract.CHECKPOINT_DIR)
    trainer.save_model(str(checkpoint))  # the best epoch, with its tokenizer
    if not trainer.is_world_process_zero():
        return None
    tuned, choice, probabilities = recipe.thresholds == "tuned", None, None
    if tuned or recipe.blend == "auto":  # picked on the validation texts as the best epoch answers them served
        train, validation = (pd.read_parquet(Path(folder, contract.split_file(split)))
                             for split in contract.LEXICAL_SPLITS)
        labels = task.targets(validation["label"])
        encoder = validation_probabilities(checkpoint, task, validation, recipe.eval_batch_size)
    if recipe.blend == "auto":  # the lexical model beside the weights, at the weight validation picks
        lexical, choice, lexical_probabilities = blend.fit_blend(task, train, validation, encoder, tuned)
        task = dataclasses.replace(task, blend_weight=choice.weight, thresholds=choice.thresholds)
        if choice.weight > 0:
            joblib.dump(lexical, checkpoint / LEXICAL)
        probabilities = blend.probability_table(task, labels, encoder=encoder, lexical=lexical_probabilities)
    elif tuned:  # each tag's threshold for its best F1 on the validation texts
        task = dataclasses.replace(task, thresholds=tuned_thresholds(labels, encoder))
    write_task(task, checkpoint)  # register stores it in the model's metadata
    epochs, best_epoch = epochs_run(trainer)
    return {"best_f1": trainer.state.best_metric, "epochs_run": epochs, "best_epoch": best_epoch, "blend": choice,
            "validation_probabilities": probabilities, "f1_name": task.f1_name,
            "thresholds": dict(zip(task.labels, task.thresholds or ())),
            "training_args": trainer.args.to_dict(),
            "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"}


@click.command(help=summary(__doc__))
@click.option("--tokenized", required=True, help="URI of tokenize's output folder.")
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True)
@spec_options(Recipe)
@click.option("--resume", type=bool, default=True, show_default=True,
              help="Go on from the latest epoch of an unfinished run with these params and commit (one machine); "
                   "false: start over.")
@process_options
def main(tokenized, model, resume, num_processes, num_machines, machine_rank, main_process_ip, main_process_port,
         **options):
    recipe = spec_from(Recipe, options)
    processes = launch.Processes(num_processes, num_machines, machine_rank, main_process_ip, main_process_port)
    if not processes.is_main_machine:
        train_on_another_machine(tokenized, model, recipe, processes)
        return
    with tracking.step_run(log_system_metrics=True) as run:
        recipe.check()
        tracking.carry_data_digest(tokenized)
        mlflow.log_param("effective_batch_size", recipe.batch_size * num_processes)
        folder = tracking.download(tokenized, "the tokenized splits")
        recipe = recipe.for_task(tokenized_task(Path(folder)).multi_label)
        mlflow.log_params({f"resolved_{name}": getattr(recipe, name) for name in ("class_weights", "thresholds")})
        resume_from = resume_point(run) if resume and num_machines == 1 else None
        # one process trains right here, in this run; launched ones join it
        step_run = (mlflow.get_tracking_uri(), run.info.run_id) if processes.distributed else None
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = launch.launch(train_process, (folder, model, tmp, recipe, resume_from, step_run), processes)
            seconds = time.perf_counter() - start
            mlflow.set_tag("precision", result["precision"])
            mlflow.log_dict(result["training_args"], "training_args.json")
            mlflow.log_metrics({"best_validation_f1": result["best_f1"], "epochs_run": result["epochs_run"],
                                "best_epoch": result["best_epoch"],
                                **{f"threshold_{metric_key(tag)}": cut for tag, cut in result["thresholds"].items()}})
            if choice := result["blend"]:
                mlflow.log_metrics(choice.metrics())
                mlflow.log_table(result["validation_probabilities"], contract.VALIDATION_PROBABILITIES)
            checkpoint = Path(tmp, contract.CHECKPOINT_DIR)
            card.write_card(training_card(folder, model, recipe, result, seconds), checkpoint)
            mlflow.log_artifacts(str(checkpoint), contract.CHECKPOINT_DIR)
        resumable.drop(run.info.run_id)
        click.echo(f"best validation F1 {result['best_f1']:.4f} at epoch {result['best_epoch']:g} of "
                   f"{result['epochs_run']:g} run" + (f"; served: {choice.described(result['f1_name'])}" if choice else ""))
        tracking.set_output(tracking.artifact_uri(run, contract.CHECKPOINT_DIR))


def training_card(folder: str, model: str, recipe: Recipe, result: dict, seconds: float):
    """tokenize's model card with what this training knows: the base model, the task, the recipe and the run."""
    model_card = card.read_card(folder)
    if not hub.looks_like_path(model):  # the Hub's base_model is a Hub id; a folder is named in the text
        model_card.data.base_model = model
    model_card = card.with_section(model_card, "What it is", card.task_section(
        model, read_task(folder), result["blend"].weight if result["blend"] else 0.0))
    return card.with_section(model_card, "Training", card.training_section(
        as_params(recipe), result["epochs_run"], result["best_epoch"], result["best_f1"], seconds,
        hardware.training_machine(recipe.device == "cpu"), result["precision"],
        result["blend"].described(result["f1_name"]) if result["blend"] else ""))


def resume_point(run) -> str | None:
    """The local copy of the checkpoint this run goes on from, recorded on the run; None to start afresh."""
    previous = resumable.find_run(mlflow.get_run(run.info.run_id))
    if previous is None:
        return None
    epoch = previous.data.tags[contract.EPOCH_TAG]
    mlflow.set_tags({"resumed_from_run_id": previous.info.run_id, "resumed_from_epoch": epoch})
    click.echo(f"resuming run {previous.info.run_id} ({previous.info.status}) after its epoch {epoch}")
    return tracking.download(resumable.checkpoint_uri(previous), "the resumable checkpoint")


def train_on_another_machine(tokenized, model, recipe, processes):
    """Machine 1, 2...: train this machine's share of the processes; machine 0 logs the one run."""
    environment.configure()
    if os.environ.get("MLFLOW_RUN_ID"):
        raise click.ClickException(
            f"machine_rank {processes.machine_rank} would log a second run of this step: start the other "
            "machines with `python -m steps.train ...` (not `mlflow run`), only machine 0 with `mlflow run`")
    try:
        folder = tracking.download(tokenized, "the tokenized splits")
        with tempfile.TemporaryDirectory() as tmp:
            launch.launch(train_process, (folder, model, tmp, recipe, None), processes)
    except PipelineError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"machine {processes.machine_rank} of {processes.num_machines} finished its part; "
               "machine 0 logged the run")


if __name__ == "__main__":
    main()
