"""The training core: fine-tune a pretrained encoder on tokenized splits with the HF Trainer,
the way accelerate's nlp_example reads: one top-down function, every setting from the Recipe.
No MLflow, no command line: the Trainer reports to MLflow when `report_to="mlflow"`, and the
callbacks the caller passes log whatever else."""

import datetime
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import load_from_disk
from sklearn.utils.class_weight import compute_class_weight
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                          EarlyStoppingCallback, PrinterCallback, Trainer, TrainerCallback, TrainingArguments,
                          set_seed)

from steps.core import hardware, hub
from steps.core.errors import PipelineError
from steps.core.metrics import trainer_metrics
from steps.core.recipe import Recipe
from steps.core.task import FILE as TASK_FILE, Task, read_task
from steps.served import text_classifier


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
            print(f"epoch {state.epoch:.0f}/{epochs:g} validation: " + ", ".join(
                f"{key[5:]} {logs[key]:.4f}" for key in ("eval_loss", "eval_accuracy", "eval_f1", "eval_macro_f1")
                if key in logs), flush=True)
        elif "loss" in logs and (now - self.last >= self.every_s or state.global_step == 1):
            self.last = now
            steps_per_epoch = state.max_steps / epochs
            epoch = min(int(state.global_step // steps_per_epoch), math.ceil(epochs) - 1)  # counting from 0
            elapsed = now - self.start
            left = elapsed / state.global_step * (state.max_steps - state.global_step)
            print(f"epoch {epoch + 1}/{epochs:g} step "
                  f"{state.global_step - epoch * steps_per_epoch:.0f}/{steps_per_epoch:.0f} "
                  f"({state.global_step / state.max_steps:.0%} of training), loss {logs['loss']:.4f}; "
                  f"{datetime.timedelta(seconds=round(elapsed))} elapsed, "
                  f"about {datetime.timedelta(seconds=round(left))} left", flush=True)


def weighted_loss(labels, count: int):
    """`compute_loss_func` for the Trainer, from the training labels: cross-entropy with scikit-learn's
    balanced class weights (n / (classes x n_class)), so a rare class counts as much as a common one; or,
    for a multi-label task (rows of 0/1), binary cross-entropy with each tag's texts weighted by its
    negatives over its positives (PyTorch's pos_weight), so a rare tag's few texts count as much as the rest."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        positives = labels.sum(axis=0)
        pos_weight = torch.tensor((len(labels) - positives) / np.maximum(positives, 1), dtype=torch.float32)

        def loss(outputs, labels, num_items_in_batch=None):
            logits = outputs.logits.float()
            return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(),
                                                                        pos_weight=pos_weight.to(logits.device))
        return loss
    weights = torch.tensor(compute_class_weight("balanced", classes=np.arange(count), y=labels), dtype=torch.float32)

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs.logits.float()
        return torch.nn.functional.cross_entropy(logits, labels, weight=weights.to(logits.device))
    return loss


def fine_tune(tokenized, tokenizer, model_name: str, task: Task, output_dir: str, recipe: Recipe, *,
              report_to: str = "none", callbacks=(), resume_from: str | None = None) -> Trainer:
    """Train, evaluating and checkpointing each epoch; the best epoch by the task's validation F1
    (the positive class's, or macro) is loaded at the end. With early_stopping_patience, the
    training stops after that many epochs without a better F1 (Hugging Face's callback).
    resume_from: a Trainer checkpoint folder to go on from (weights, optimizer, scheduler, RNG, state).

    device "auto" takes a GPU (or Apple's MPS) when there is one, else the CPU; "cpu" forces the CPU.
    """
    on_cpu = recipe.device == "cpu" or not hardware.has_accelerator()
    chunks = task.reading is not None and task.reading.long_text == "chunks"
    precision = hardware.pick_precision(recipe.precision, on_cpu)
    set_seed(recipe.seed)  # the new classification head is drawn at loading, before the Trainer seeds anything
    model = hub.load_pretrained(
        lambda name: AutoModelForSequenceClassification.from_pretrained(
            name, num_labels=len(task.labels), label2id=task.label2id, id2label=task.id2label,
            # a sigmoid and binary cross-entropy a tag: Transformers' own multi-label head
            problem_type="multi_label_classification" if task.multi_label else None),
        model_name, "model")
    args = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=recipe.epochs,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.eval_batch_size,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_steps=recipe.warmup_ratio,  # a float below 1 is a ratio of all steps
        seed=recipe.seed,
        use_cpu=on_cpu,
        bf16=precision == "bf16",  # autocast: weights stay fp32
        fp16=precision == "fp16",
        # Batches of similar lengths waste little on padding. Not with chunks: the Trainer would then
        # also shuffle the validation windows, which must stay in order to be pooled into their texts.
        train_sampling_strategy="group_by_length" if recipe.group_by_length and not chunks else "random",
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
        # a resumed training goes on counting the epochs without improvement where it stopped
        restore_callback_states_from_checkpoint=True,
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
        # with long_text=chunks, each validation text is scored as served: its windows' mean
        compute_metrics=trainer_metrics(task, list(tokenized["validation"]["document"]) if chunks else None),
        compute_loss_func=(weighted_loss(tokenized["train"]["label"], len(task.labels))
                           if recipe.class_weights == "balanced" else None),
    )
    trainer.remove_callback(PrinterCallback)
    stopping = (EarlyStoppingCallback(recipe.early_stopping_patience),) if recipe.early_stopping_patience else ()
    for callback in (ProgressLines(), *stopping, *callbacks):
        trainer.add_callback(callback)
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer


def validation_probabilities(checkpoint: Path, task: Task, validation: pd.DataFrame, batch_size: int) -> np.ndarray:
    """The probabilities of prepare's validation split (its texts, or pairs) in the split's order,
    from the checkpoint saved in `checkpoint`, each text read and scored as served, in fp32 (the
    Trainer's own evaluation orders the texts by length: they would have to be matched back)."""
    scorer = text_classifier.checkpoint_scorer(str(checkpoint), asdict(task.read_as))
    pairs = list(validation["text_pair"]) if "text_pair" in validation else None
    return scorer.probabilities(list(validation["text"]), batch_size, pairs)


def epochs_run(trainer: Trainer) -> tuple[float, float]:
    """How many epochs the training ran (fewer than asked when it stopped early), and the best one's number."""
    best = next(entry["epoch"] for entry in trainer.state.log_history
                if entry.get("step") == trainer.state.best_global_step and "eval_f1" in entry)
    return trainer.state.epoch, best


def tokenized_task(folder: Path) -> Task:
    """The task of tokenize's output folder, once the folder is seen to be one."""
    if not (folder / "dataset").is_dir() or not (folder / "tokenizer").is_dir() or not (folder / TASK_FILE).exists():
        raise PipelineError(f"{folder} has no dataset/, tokenizer/ and {TASK_FILE}: pass the output URI of "
                            "tokenize as tokenized")
    return read_task(folder)


def read_tokenized(folder: Path):
    """tokenize's output folder: the tokenized splits, the tokenizer and the task."""
    task = tokenized_task(folder)
    return load_from_disk(str(folder / "dataset")), AutoTokenizer.from_pretrained(str(folder / "tokenizer")), task
