"""Time the tutorial's fine-tuning recipe against this project's, on one machine, model and split.

    python -m benchmarks.benchmark --data ../shared/data/sms_spam/SMSSpamCollection --model <folder>

1. the tutorial as written: every message padded to 128 tokens, tokenized one at a time,
   batch 8, fp32; its pipeline (batch 8) scores the test split;
2. the `train` step's defaults (steps.train.fine_tune) and `validate`'s batched scoring.

Both train for the same epochs on prepare's train split (seed 22) and are scored on its test
split. Prints training examples/s, wall times, test accuracy and spam F1, scoring messages/s,
the ratios, the measured matmul peak and the useful (non-padding) token throughput.
"""

import platform
import tempfile
import time
from pathlib import Path

import click
import pandas as pd
import torch
from datasets import Dataset, DatasetDict
from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments,
                          pipeline)

from steps import data, prepare, tokenize, train
from steps.metrics import classification_metrics, trainer_metrics
from steps.validate import DEFAULT_CHECKS, predict_in_length_order


DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where both recipes train and score


def matmul_peak(dtype, size=2048, repeats=5, tries=5) -> float:
    """Measured dense matmul throughput in FLOP/s: the best of a few tries, so a busy moment does not count."""
    size = size * 4 if DEVICE == "cuda" else size
    a, b = (torch.randn(size, size, dtype=dtype, device=DEVICE) for _ in range(2))
    a @ b  # warm up
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 * repeats / best


def score(classifier, texts, labels, batch_size, in_length_order):
    start = time.perf_counter()
    if in_length_order:
        predicted = predict_in_length_order(lambda batch: classifier(batch, batch_size=batch_size), texts)
    else:
        predicted = pd.DataFrame(classifier(list(texts), batch_size=batch_size))
    seconds = time.perf_counter() - start
    ids = predicted["label"].map(data.LABELS).to_numpy()
    return classification_metrics(labels, ids), len(texts) / seconds


def tutorial_recipe(splits, model, epochs, seed, workdir):
    """The notebook's cells, with `evaluation_strategy` renamed and MLflow reporting off for both."""
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenized = splits.map(lambda example: tokenizer(example["text"], padding="max_length", truncation=True))
    tokenize_seconds = time.perf_counter() - start
    classifier = AutoModelForSequenceClassification.from_pretrained(
        model, num_labels=2, label2id=data.LABELS, id2label={i: n for n, i in data.LABELS.items()})
    args = TrainingArguments(output_dir=workdir, eval_strategy="epoch", per_device_train_batch_size=8,
                             per_device_eval_batch_size=8, logging_steps=8, num_train_epochs=epochs, seed=seed,
                             report_to="none", disable_tqdm=True)
    trainer = Trainer(model=classifier, args=args, train_dataset=tokenized["train"],
                      eval_dataset=tokenized["validation"], compute_metrics=trainer_metrics)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    tuned = pipeline("text-classification", model=trainer.model, tokenizer=tokenizer, batch_size=8, device=DEVICE)
    return {"tokenize_s": tokenize_seconds, "train_s": train_seconds, "classifier": tuned, "batch_size": 8,
            "in_length_order": False, "tokens": sum(sum(m) for m in tokenized["train"]["attention_mask"]),
            "params": classifier.num_parameters()}


def our_recipe(splits, model, epochs, seed, workdir, overrides):
    start = time.perf_counter()
    tokenizer = tokenize.load_tokenizer(model)
    tokenized, _ = tokenize.tokenize_splits(splits, tokenizer, 128)
    tokenize_seconds = time.perf_counter() - start
    settings = {**train.DEFAULTS, "epochs": epochs, "seed": seed, **overrides}
    start = time.perf_counter()
    trainer = train.fine_tune(tokenized, tokenizer, model, data.LABELS, workdir, **settings)
    train_seconds = time.perf_counter() - start
    tuned = pipeline("text-classification", model=trainer.model, tokenizer=tokenizer, device=DEVICE)
    return {"tokenize_s": tokenize_seconds, "train_s": train_seconds, "classifier": tuned,
            "batch_size": train.DEFAULTS["eval_batch_size"], "in_length_order": True,
            "tokens": sum(len(ids) for ids in tokenized["train"]["input_ids"]), "params": trainer.model.num_parameters(),
            "settings": settings}


@click.command(help=__doc__)
@click.option("--data", "data_path", required=True, type=click.Path(exists=True), help="The UCI SMS file.")
@click.option("--model", required=True, type=click.Path(exists=True, file_okay=False), help="A local model folder.")
@click.option("--epochs", type=float, default=1, show_default=True)
@click.option("--seed", type=int, default=22, show_default=True)
@click.option("--skip-tutorial", is_flag=True, help="Time only this project's recipe.")
@click.option("--set", "overrides", multiple=True, help="Override a train setting of ours, e.g. --set batch_size=16.")
def main(data_path, model, epochs, seed, skip_tutorial, overrides):
    _, frames, _ = prepare.prepare(data.read_table(data_path), "", "", 0.2, 0.1, seed)
    splits = DatasetDict({name: Dataset.from_pandas(frame, preserve_index=False) for name, frame in frames.items()})
    test = frames["test"]
    settings = {key: type(train.DEFAULTS[key])(value) if not isinstance(train.DEFAULTS[key], bool)
                else value.lower() in ("1", "true", "yes")
                for key, value in (item.split("=", 1) for item in overrides)}
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    where = torch.cuda.get_device_name() if DEVICE == "cuda" else f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"machine: {where}, "
          f"torch {torch.__version__}; matmul peak fp32 {peak['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s")
    print(f"data: train {len(frames['train'])}, validation {len(frames['validation'])}, test {len(test)}; "
          f"epochs {epochs:g}; model {model}")

    recipes = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not skip_tutorial:
            recipes["tutorial"] = tutorial_recipe(splits, model, epochs, seed, str(Path(tmp, "tutorial")))
        recipes["ours"] = our_recipe(splits, model, epochs, seed, str(Path(tmp, "ours")), settings)
    print("ours: " + ", ".join(f"{k}={v}" for k, v in recipes["ours"]["settings"].items()))

    header = f"{'recipe':<9} {'train ex/s':>10} {'train s':>8} {'tokenize s':>10} {'useful tok/s':>12} " \
             f"{'of peak':>8} {'test acc':>8} {'spam F1':>8} {'score msg/s':>11}"
    print(header)
    for name, result in recipes.items():
        scores, messages_per_second = score(result["classifier"], test["text"], test["label"], result["batch_size"],
                                            result["in_length_order"])
        result.update(scores=scores, score_rate=messages_per_second,
                      examples_per_second=len(frames["train"]) * epochs / result["train_s"])
        useful_tokens_per_second = result["tokens"] * epochs / result["train_s"]
        precision = train.pick_precision(result.get("settings", {}).get("precision", "fp32"), on_cpu=DEVICE == "cpu")
        # ~6 FLOPs per parameter per token for forward and backward (attention's share left out).
        fraction = useful_tokens_per_second * 6 * result["params"] / peak["bf16" if precision == "bf16" else "fp32"]
        print(f"{name:<9} {result['examples_per_second']:>10.1f} {result['train_s']:>8.1f} "
              f"{result['tokenize_s']:>10.2f} {useful_tokens_per_second:>12.0f} {fraction:>8.1%} "
              f"{scores['accuracy']:>8.4f} {scores['f1']:>8.4f} {messages_per_second:>11.1f}")
    checks = data.normalise(data.read_table(DEFAULT_CHECKS))
    for name, result in recipes.items():
        predicted = result["classifier"](list(checks["text"]))
        passed = sum(data.LABELS[p["label"]] == label for p, label in zip(predicted, checks["label"]))
        print(f"{name}: the tutorial's behaviour checks: {passed}/{len(checks)} right ("
              + ", ".join(f"{p['label']} {p['score']:.3f}" for p in predicted) + ")")
    if "tutorial" in recipes:
        ours, tutorial = recipes["ours"], recipes["tutorial"]
        print(f"ratio ours/tutorial: training {ours['examples_per_second'] / tutorial['examples_per_second']:.1f}x, "
              f"scoring {ours['score_rate'] / tutorial['score_rate']:.1f}x, spam F1 "
              f"{ours['scores']['f1'] - tutorial['scores']['f1']:+.4f}")


if __name__ == "__main__":
    main()
