"""The model card: a Hugging Face Hub README.md (YAML front matter: base_model, pipeline_tag,
datasets, model-index; then Markdown sections), so the checkpoint folder is also a valid Hub model
folder. Each step adds what it alone knows and passes the card on beside its output, as it does
the task file: prepare the data, tokenize how a text is read, train the base model and the
training, register the serving, validate the figures and the verdict. Pure: the steps read and
write the file."""

import collections
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from steps.core.task import Task, metric_key

FILE = "README.md"
LIMITS = "Limits"
# the sections in the order a reader wants them, whichever step wrote each
ORDER = ("What it is", "Training data", "Training", "Serving", "Evaluation", LIMITS)
FEW_TEST_ROWS = 30  # a class with fewer test rows has an F1 that one row moves by several points
FIGURES = {"accuracy": "accuracy", "f1": "f1", "macro_f1": "macro F1", "micro_f1": "micro F1",
           "hamming_loss": "Hamming loss", "roc_auc": "ROC AUC"}  # metric: its name here


def new_card(dataset: str) -> ModelCard:
    return ModelCard("---\n" + ModelCardData(pipeline_tag="text-classification", library_name="transformers",
                                             datasets=[dataset]).to_yaml() + "\n---\n")


def read_card(folder) -> ModelCard:
    """The card in `folder`; an empty one where an older step's output has none."""
    path = Path(folder, FILE)
    return ModelCard(path.read_text(encoding="utf-8") if path.exists() else "")


def write_card(card: ModelCard, folder) -> Path:
    path = Path(folder, FILE)
    path.write_text(str(card), encoding="utf-8")
    return path


def with_section(card: ModelCard, title: str, body: str) -> ModelCard:
    """The card with its section `## title` (one of ORDER) replaced by `body`: a step run again
    rewrites its own part, not a second copy."""
    sections = split_sections(card.text)
    sections[title] = body.strip()
    order = sorted(sections, key=lambda name: ORDER.index(name) + 1 if name in ORDER else 0)
    card.text = "\n\n".join(f"## {name}\n\n{sections[name]}" if name else sections[name]
                            for name in order if sections[name]) + "\n"
    return card


def with_limits(card: ModelCard, *lines: str) -> ModelCard:
    """The card with `lines` added to its Limits (each a bullet; one already there is not repeated)."""
    bullets = split_sections(card.text).get(LIMITS, "").splitlines()
    bullets += [f"- {line}" for line in lines if f"- {line}" not in bullets]
    return with_section(card, LIMITS, "\n".join(bullets))


def split_sections(text: str) -> dict[str, str]:
    """A card's Markdown as {title: body} in order ('' for what comes before the first section)."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    sections = {"": parts[0].strip()}
    sections.update({title.strip(): body.strip() for title, body in zip(parts[1::2], parts[2::2])})
    return sections


def table(header: list[str], rows) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def scripts(texts, sample_chars: int = 200_000) -> str:
    """The writing systems of the texts' letters ('Latin 99.8 %'), from Unicode names: what can be
    said of their language without a language detector."""
    counts = collections.Counter()
    for text in texts:
        for char in text:
            if char.isalpha():
                counts[unicodedata.name(char, "UNKNOWN ?").split()[0].title()] += 1
        if counts.total() >= sample_chars:
            break
    total = counts.total() or 1
    return ", ".join(f"{script} {count / total:.1%}" for script, count in counts.most_common(3)) or "no letters"


def data_section(dataset: str, digest: str, splits: dict[str, pd.DataFrame], task: Task) -> str:
    """prepare's part: where the rows came from, and each split's size and class (tag) counts."""
    per_split = [task.counts(part["label"]) for part in splits.values()]
    counts = [[label] + [found[label] for found in per_split] for label in task.labels]
    if task.multi_label:
        counts.append(["(no tag)"] + [int((task.targets(part["label"]).sum(axis=1) == 0).sum())
                                      for part in splits.values()])
    return (f"Data set `{dataset}` (digest `{digest}`), {task.inputs_name}, split stratified:\n\n"
            + table(["tag" if task.multi_label else "class", *splits],
                    counts + [["**all**", *(len(part) for part in splits.values())]]))


def language_limit(texts) -> str:
    """prepare's limit: what can be said of the training texts' language."""
    return (f"Its training texts' letters by script: {scripts(texts)} (the language itself is not detected); "
            "texts in other scripts or languages are outside what it learned.")


def task_section(base_model: str, task: Task, blend_weight: float = 0.0) -> str:
    """train's part: what the model is (blend_weight: the TF-IDF model's share of its probabilities)."""
    scored = (f"binary; scored by the F1 of `{task.positive_label}`" if task.is_binary
              else f"{len(task.labels)} tags, any number a text, each answered at probability "
                   + (", ".join(f"`{label}` {cut:g}" for label, cut in zip(task.labels, task.cutoffs))
                      if task.thresholds else f"{task.cutoffs[0]:g}") + "; scored by macro F1 over the tags"
              if task.multi_label else f"{len(task.labels)} classes, one a text; scored by macro F1")
    reading = task.read_as
    return "\n".join([
        f"A text classifier fine-tuned from `{base_model}` on {task.inputs_name}"
        + (f", blended with a TF-IDF model (its probabilities' weight {blend_weight:g})" if blend_weight else "")
        + ".", "",
        f"- Labels, in id order: {', '.join(f'`{label}`' for label in task.labels)} ({scored}).",
        f"- Reads {reading.max_length} tokens at once; a longer text: `{reading.long_text}`"
        + (f" (windows sharing {reading.stride} tokens, their probabilities averaged)"
           if reading.long_text == "chunks" else "") + "."])


def training_section(recipe: dict, epochs_run: float, best_epoch: float, best_f1: float, seconds: float,
                     machine: str, precision: str, served: str = "") -> str:
    """train's part: how it was trained, every recipe setting, how long it took where, and what is
    served (`served`: the blend, in words)."""
    return (f"{epochs_run:g} epoch{'' if epochs_run == 1 else 's'} run, the best (kept) epoch {best_epoch:g} with "
            f"validation F1 {best_f1:.4f}; {seconds / 60:.1f} min on {machine}, {precision}.\n\n"
            + (f"Served: {served}.\n\n" if served else "")
            + table(["setting", "value"], [[f"`{name}`", f"`{value}`"] for name, value in recipe.items()]))


def reading_limit(max_length: int, long_text: str, fraction_cut: float) -> str:
    """tokenize's part: what a long text loses."""
    if not fraction_cut:
        return (f"No text of the data was longer than {max_length} tokens; a longer one is "
                + ("read whole, in windows whose answers are averaged." if long_text == "chunks" else
                   f"cut to its {'start' if long_text == 'head' else 'start and end'}."))
    share = f"{fraction_cut:.0%}" if fraction_cut >= 0.01 else f"{fraction_cut:.2%}"  # not "0%" for a few texts
    if long_text == "chunks":
        return (f"{share} of the texts were longer than {max_length} tokens; every text is read "
                "whole, in windows whose answers are averaged (a signal in one window is diluted by the rest).")
    return (f"{share} of the texts were longer than {max_length} tokens: the model reads only "
            f"{'the start' if long_text == 'head' else 'the start and the end'} of a longer text.")


def serving_section(serving_format: str, dtype: str, batch_size: int, blend_weight: float = 0.0) -> str:
    """register's part."""
    return (f"Served as `{serving_format}`" + (f", weights in {dtype}" if dtype else "")
            + f", in batches of {batch_size}; every format reads a text as training did"
            + (f" and blends the TF-IDF model's probabilities at weight {blend_weight:g}" if blend_weight else "") + ".")


def confused_pairs(task: Task, labels, predicted, shown: int = 3) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) confusions of the test split; multi-label: a tag missed
    in a text that got another it does not carry."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if task.multi_label:
        pairs = collections.Counter((task.labels[t], task.labels[p]) for truth, guess in zip(labels, predicted)
                                    for t in np.flatnonzero(truth > guess) for p in np.flatnonzero(guess > truth))
    else:
        pairs = collections.Counter((task.labels[t], task.labels[p]) for t, p in zip(labels, predicted) if t != p)
    return [(true, guess, count) for (true, guess), count in pairs.most_common(shown)]


def evaluation_section(evidence, verdict: str) -> str:
    """validate's part: the test figures beside the baseline's and the champion's, each class's F1,
    the behaviour checks by capability, the most confused classes, and the gate's verdict."""
    versions = [("this version", evidence.scores), ("TF-IDF baseline", evidence.baseline_scores)]
    if evidence.champion_scores:
        versions.append((f"champion (version {evidence.champion})", evidence.champion_scores))
    task = evidence.task
    shown = [key for key in FIGURES if key in evidence.scores and (key != "macro_f1" or task.is_binary)]
    overall = [["subset accuracy" if key == "accuracy" and task.multi_label else FIGURES[key]]
               + [f"{scores[key]:.4f}" if key in scores else "" for _, scores in versions]
               for key in shown]  # macro F1 is the f1 of a task of more classes: one row
    per_class = [[f"F1 `{label}` ({evidence.test_counts.get(label, '?')} test rows)"]
                 + [f"{scores.get(f'f1_{metric_key(label)}', float('nan')):.4f}" for _, scores in versions]
                 for label in task.labels]
    lines = [f"On the held-out test split ({evidence.test_rows} rows; f1 is the {task.f1_name}):", "",
             table(["", *(name for name, _ in versions)], overall + per_class)]
    if evidence.champion_rows is not None:
        lines += ["", f"The champion trained on another split: its column is its score on the {evidence.champion_rows} "
                      f"test rows it did not train on, where this version's {task.f1_name} is "
                      f"{evidence.f1_beside_champion:.4f}."]
    differences = [(difference, other) for difference, other in ((evidence.baseline_difference, "the TF-IDF baseline"),
                   (evidence.champion_difference, "the champion")) if difference]
    if differences:
        lines += ["", "Paired bootstrap over the same test rows: " + "; ".join(
            difference.said(task.f1_name, other) for difference, other in differences) + "."]
    if evidence.confusions:
        lines += ["", "Most confused: " + "; ".join(f"`{true}` read as `{guess}` {count}x"
                                                    for true, guess, count in evidence.confusions) + "."]
    if evidence.check_results is not None:
        lines += ["", "Behaviour checks passed, by capability: " + ", ".join(
            f"{capability} {group.mean():.0%} of {len(group)}"
            for capability, group in evidence.check_results.groupby("capability")["passed"]) + "."]
    lines += ["", f"**Verdict:** {verdict}"]
    return "\n".join(lines)


def few_rows_limit(test_counts: dict[str, int]) -> str | None:
    few = {label: count for label, count in test_counts.items() if count < FEW_TEST_ROWS}
    if not few:
        return None
    return ("Few test rows, so a wide uncertainty on their F1: "
            + ", ".join(f"`{label}` {count}" for label, count in few.items()) + ".")


def with_results(card: ModelCard, name: str, scores: dict) -> ModelCard:
    """The card's model-index: the test figures on its data set, as the Hub reads them."""
    dataset = (card.data.datasets or ["unknown"])[0]
    card.data.model_name = name
    card.data.eval_results = [EvalResult(task_type="text-classification", dataset_type=dataset, dataset_name=dataset,
                                         dataset_split="test", metric_type=key, metric_value=round(scores[key], 4))
                              for key in FIGURES if key in scores]
    return card


def summary(card: ModelCard, name: str, version: str, status: str, card_page: str) -> str:
    """The registry description's one paragraph: what the version is, from what, how it stands, and
    a link to the whole card (`card_page`: its page in the MLflow UI, relative to the UI's root)."""
    first = split_sections(card.text).get("What it is", "").splitlines()[0:1]
    return (f"{name} version {version}: {first[0] if first else 'a text classifier.'} "
            f"Data: {', '.join(card.data.datasets or ['unknown'])}. {status} "
            f"[The model card]({card_page}) (README.md in the Hub's format) is an artifact of this version's run.")


def card_page(experiment_id: str, run_id: str, path: str) -> str:
    """The MLflow UI's page of a run's artifact, as a link within the UI."""
    return f"#/experiments/{experiment_id}/runs/{run_id}/artifacts/{path}"
