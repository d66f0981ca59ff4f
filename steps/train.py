"""train: fine-tune a pretrained transformer on the tokenized splits with the HF Trainer.

Inputs:  tokenized (URI of tokenize's output), model (Hub id or local folder), epochs,
         batch_size, learning_rate, weight_decay, warmup_ratio, seed; and the fast path:
         precision (bf16 autocast where the hardware has it), group_by_length (batches of
         similar lengths, padded per batch), eval_batch_size, device; and to scale out
         (accelerate's names): num_processes (all machines together), num_machines, machine_rank,
         main_process_ip, main_process_port. More than one process: the training runs
         data-parallel through torch.distributed's launcher; machine 0 logs the one run.
         resume: go on from the last epoch of an unfinished run with the same params and commit.
Logs:    per-step training loss and learning rate, per-epoch validation loss, accuracy,
         precision, recall, spam F1 and ROC AUC (through the Trainer's MLflow callback);
         training_args.json; param effective_batch_size; tag precision; system metrics (CPU,
         memory; GPU given nvidia-ml-py); while it trains, resumable/epoch-<n>/ (the latest epoch's
         full Trainer checkpoint, tag resumable_epoch; dropped at the end); tags resumed_from_run_id
         and resumed_from_epoch when it resumed; artifact checkpoint/ with the best epoch by validation F1
         (safetensors weights, config with id2label/label2id, tokenizer).
Output:  runs:/<run id>/checkpoint
"""

import datetime
import json
import math
import os
import tempfile
import time
from pathlib import Path

import click
import mlflow
from mlflow.tracking import MlflowClient
from datasets import load_from_disk
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, PrinterCallback,
                          Trainer, TrainerCallback, TrainingArguments, set_seed)

from steps.shared import hardware, hub, launch, resumable, tracking
from steps.shared.errors import PipelineError
from steps.shared.metrics import trainer_metrics

# The Trainer's MLflow callback would log every TrainingArguments field as a param, and
# clash with this step's own params (`learning_rate` "5e-5" vs "5e-05"); the full
# arguments go to training_args.json instead.
os.environ.setdefault("MLFLOW_MAX_LOG_PARAMS", "0")


# The recipe's defaults, shared by the command line below and the benchmark.
DEFAULTS = {"epochs": 3.0, "batch_size": 16, "learning_rate": 1e-4, "weight_decay": 0.0, "warmup_ratio": 0.0,
            "seed": 22, "precision": "auto", "group_by_length": True, "eval_batch_size": 64, "device": "auto"}


class ProgressLines(TrainerCallback):
    """One readable line at most every `every_s` seconds: epoch, step, loss and the time left;
    and each epoch's validation scores. (The Trainer's own printer shows raw dicts, and a
    progress bar turns to noise in a log file.)"""

    def __init__(self, every_s: float = 10.0):
        self.every_s, self.start, self.last = every_s, 0.0, 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = self.last = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero:  # one voice, whatever the number of processes
            return
        logs, now = logs or {}, time.monotonic()
        epochs = args.num_train_epochs
        if "eval_f1" in logs:
            click.echo(f"epoch {state.epoch:.0f}/{epochs:g} validation: " + ", ".join(
                f"{key[5:]} {logs[key]:.4f}" for key in ("eval_loss", "eval_accuracy", "eval_f1") if key in logs))
        elif "loss" in logs and (now - self.last >= self.every_s or state.global_step == 1):
            self.last = now
            steps_per_epoch = state.max_steps / epochs
            epoch = min(int(state.global_step // steps_per_epoch), math.ceil(epochs) - 1)  # counting from 0
            elapsed = now - self.start
            left = elapsed / state.global_step * (state.max_steps - state.global_step)
            click.echo(f"epoch {epoch + 1}/{epochs:g} step "
                       f"{state.global_step - epoch * steps_per_epoch:.0f}/{steps_per_epoch:.0f} "
                       f"({state.global_step / state.max_steps:.0%} of training), loss {logs['loss']:.4f}; "
                       f"{datetime.timedelta(seconds=round(elapsed))} elapsed, "
                       f"about {datetime.timedelta(seconds=round(left))} left")


def fine_tune(tokenized, tokenizer, model_name: str, label_map: dict[str, int], output_dir: str, *,
              epochs: float, batch_size: int, learning_rate: float, weight_decay: float, warmup_ratio: float,
              seed: int, precision: str, group_by_length: bool, eval_batch_size: int, device: str,
              report_to: str = "none", callbacks=(), resume_from: str | None = None) -> Trainer:
    """Train, evaluating and checkpointing each epoch; the best epoch by validation F1 is loaded at the end.
    resume_from: a Trainer checkpoint folder to go on from (weights, optimizer, scheduler, RNG, state).

    device "auto" takes a GPU (or Apple's MPS) when there is one, else the CPU; "cpu" forces the CPU.
    """
    on_cpu = device == "cpu" or not hardware.has_accelerator()
    precision = hardware.pick_precision(precision, on_cpu)
    set_seed(seed)  # the new classification head is drawn at loading, before the Trainer seeds anything
    model = hub.load_pretrained(
        lambda name: AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=len(label_map), label2id=label_map, id2label={i: n for n, i in label_map.items()}),
        model_name, "model")
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=epochs,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=warmup_ratio,  # a float below 1 is a ratio of all steps
        seed=seed,
        use_cpu=on_cpu,
        bf16=precision == "bf16",  # autocast: weights stay fp32
        fp16=precision == "fp16",
        # Batches of similar lengths waste little on padding.
        train_sampling_strategy="group_by_length" if group_by_length else "random",
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,  # with load_best_model_at_end the best is kept as well
        save_on_each_node=True,
        # Several processes: the loss is already a mean over each batch's messages; averaging "tokens"
        # across processes would multiply it by their number. And every weight gets a gradient.
        average_tokens_across_devices=False,
        ddp_find_unused_parameters=False,  # every machine reloads the best epoch at the end, from its own disk
        load_best_model_at_end=True,
        metric_for_best_model="f1",
        logging_strategy="steps",
        logging_steps=10,
        logging_first_step=True,
        report_to=report_to,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),  # pad each batch to its longest message
        compute_metrics=trainer_metrics,
    )
    trainer.remove_callback(PrinterCallback)
    for callback in (ProgressLines(), *callbacks):
        trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer


def read_tokenized(folder: Path):
    if not (folder / "dataset").is_dir() or not (folder / "tokenizer").is_dir():
        raise PipelineError(f"{folder} has no dataset/ and tokenizer/: pass the output URI of tokenize as tokenized")
    return (load_from_disk(str(folder / "dataset")), AutoTokenizer.from_pretrained(str(folder / "tokenizer")),
            json.loads((folder / "label_map.json").read_text()))


def run_options(command):
    """The options of how a fine-tune runs (seed, precision, batching, device), shared by train and tune."""
    options = [
        click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True),
        click.option("--precision", type=click.Choice(hardware.PRECISIONS), default=DEFAULTS["precision"],
                     show_default=True, help="auto: bf16 where the hardware has it, fp16 on older GPUs, else fp32."),
        click.option("--group-by-length", type=bool, default=DEFAULTS["group_by_length"], show_default=True,
                     help="Batch messages of similar length together (less padding)."),
        click.option("--eval-batch-size", type=click.IntRange(min=1), default=DEFAULTS["eval_batch_size"],
                     show_default=True),
        click.option("--device", type=click.Choice(["auto", "cpu"]), default=DEFAULTS["device"], show_default=True,
                     help="auto: a GPU when there is one; cpu: the CPU even then."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def train_process(folder: str, model_name: str, output_dir: str, recipe: dict, resume_from: str | None) -> dict | None:
    """One training process: fine-tune (from a resumable checkpoint, when given one), logging each
    epoch's resumable checkpoint, and save the best epoch to output_dir/checkpoint.

    With several processes each runs this; only the first logs to MLflow (the Trainer's callback
    joins the step's run through MLFLOW_RUN_ID) and saves, and only it returns what the step logs."""
    datasets, tokenizer, label_map = read_tokenized(Path(folder))
    trainer = fine_tune(datasets, tokenizer, model_name, label_map, str(Path(output_dir, "trainer")), **recipe,
                        report_to="mlflow", callbacks=(resumable.LogEachEpoch(),), resume_from=resume_from)
    trainer.save_model(str(Path(output_dir, "checkpoint")))  # the best epoch, with its tokenizer
    if not trainer.is_world_process_zero():
        return None
    return {"best_f1": trainer.state.best_metric, "training_args": trainer.args.to_dict(),
            "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32"}


def process_options(command):
    """accelerate's settings for training on several processes or machines (launch.Processes)."""
    options = [
        click.option("--num-processes", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Training processes on all machines together (one per GPU; on CPUs, up to one per core)."),
        click.option("--num-machines", type=click.IntRange(min=1), default=1, show_default=True),
        click.option("--machine-rank", type=click.IntRange(min=0), default=0, show_default=True,
                     help="This machine's number; 0 is the main one, which logs the run."),
        click.option("--main-process-ip", default="127.0.0.1", show_default=True,
                     help="Address of machine 0, which the others reach."),
        click.option("--main-process-port", type=click.IntRange(1, 65535), default=29500, show_default=True),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command(help=__doc__)
@click.option("--tokenized", required=True, help="URI of tokenize's output folder.")
@click.option("--model", default=hub.DEFAULT_MODEL, show_default=True)
@click.option("--epochs", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS["epochs"], show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=DEFAULTS["batch_size"], show_default=True,
              help="Per process: the effective batch is batch_size x num_processes.")
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS["learning_rate"],
              show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=DEFAULTS["weight_decay"], show_default=True)
@click.option("--warmup-ratio", type=click.FloatRange(min=0, max=1, max_open=True), default=DEFAULTS["warmup_ratio"],
              show_default=True)
@click.option("--resume", type=bool, default=True, show_default=True,
              help="Go on from the latest epoch of an unfinished run with these params and commit (one machine); "
                   "false: start over.")
@run_options
@process_options
def main(tokenized, model, resume, num_processes, num_machines, machine_rank, main_process_ip, main_process_port,
         **recipe):
    processes = launch.Processes(num_processes, num_machines, machine_rank, main_process_ip, main_process_port)
    if not processes.is_main_machine:
        train_on_another_machine(tokenized, model, recipe, processes)
        return
    with tracking.step_run(log_system_metrics=True) as run:
        tracking.carry_data_digest(tokenized)
        mlflow.log_param("effective_batch_size", recipe["batch_size"] * num_processes)
        folder = tracking.download(tokenized, "the tokenized splits")
        resume_from = resume_point(run) if resume and num_machines == 1 else None
        if processes.distributed:  # the first process joins this run through the Trainer's MLflow callback
            os.environ.update(MLFLOW_RUN_ID=run.info.run_id, MLFLOW_TRACKING_URI=mlflow.get_tracking_uri())
        with tempfile.TemporaryDirectory() as tmp:
            result = launch.launch(train_process, (folder, model, tmp, recipe, resume_from), processes)
            if processes.distributed:  # that callback ended the run it joined: the step is not done yet
                MlflowClient().update_run(run.info.run_id, status="RUNNING")
            mlflow.set_tag("precision", result["precision"])
            mlflow.log_dict(result["training_args"], "training_args.json")
            mlflow.log_metric("best_validation_f1", result["best_f1"])
            mlflow.log_artifacts(str(Path(tmp, "checkpoint")), "checkpoint")
        resumable.drop(run.info.run_id)
        click.echo(f"best validation F1 {result['best_f1']:.4f}")
        tracking.set_output(tracking.artifact_uri(run, "checkpoint"))


def resume_point(run) -> str | None:
    """The local copy of the checkpoint this run goes on from, recorded on the run; None to start afresh."""
    previous = resumable.find_run(mlflow.get_run(run.info.run_id))
    if previous is None:
        return None
    epoch = previous.data.tags[resumable.EPOCH_TAG]
    mlflow.set_tags({"resumed_from_run_id": previous.info.run_id, "resumed_from_epoch": epoch})
    click.echo(f"resuming run {previous.info.run_id} ({previous.info.status}) after its epoch {epoch}")
    return tracking.download(resumable.checkpoint_uri(previous), "the resumable checkpoint")


def train_on_another_machine(tokenized, model, recipe, processes):
    """Machine 1, 2...: train this machine's share of the processes; machine 0 logs the one run."""
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
