"""Tokenizing prepare's splits: each text (or pair) read into the model's windows as the Reading
says (steps/served/text_classifier.py's encode, the same the served model uses), its label on each
window, and the length figures that tell whether most texts are cut. No MLflow, no command line."""

from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict
from transformers import AutoTokenizer

from steps.core import hub
from steps.core.data import SPLITS, split_file
from steps.core.errors import PipelineError
from steps.core.reading import Reading
from steps.core.task import FILE as TASK_FILE
from steps.served import text_classifier

def read_splits(folder: Path) -> DatasetDict:
    missing = [f for f in [*map(split_file, SPLITS), TASK_FILE] if not (folder / f).exists()]
    if missing:
        raise PipelineError(f"{folder} has no {', '.join(missing)}: pass the output URI of prepare as data")
    return DatasetDict({s: Dataset.from_pandas(pd.read_parquet(folder / split_file(s)), preserve_index=False)
                        for s in SPLITS})


def token_length_stats(lengths, max_length: int) -> dict[str, float]:
    lengths = np.asarray(lengths)
    return {"token_length_median": float(np.median(lengths)),
            "token_length_p95": float(np.percentile(lengths, 95)),
            "token_length_max": float(lengths.max()),
            "fraction_truncated": float((lengths > max_length).mean())}


def tokenize_splits(splits: DatasetDict, tokenizer, reading: Reading) -> tuple[DatasetDict, dict[str, float]]:
    """Each split's windows as token ids (text_classifier.encode: unpadded, with each window's text
    label, and its text's index as `document`); and the untruncated length figures."""
    pair = "text_pair" in splits["train"].column_names
    reading.check(tokenizer.num_special_tokens_to_add(pair=pair), pair)
    texts = [t for split in splits.values() for t in split["text"]]
    pairs = [t for split in splits.values() for t in split["text_pair"]] if pair else None
    stats = token_length_stats([len(ids) for ids in tokenizer(texts, pairs, verbose=False)["input_ids"]],
                               reading.max_length)
    tokenized = {}
    for name, split in splits.items():
        inputs, documents = text_classifier.encode(tokenizer, split["text"], reading.max_length, reading.long_text,
                                                   reading.stride, split["text_pair"] if pair else None)
        labels = list(split["label"])
        if labels and isinstance(labels[0], list):  # a multi-label task's rows of 0/1: binary cross-entropy takes floats
            labels = [[float(on) for on in row] for row in labels]
        tokenized[name] = Dataset.from_dict({**inputs, "label": [labels[d] for d in documents],
                                             "document": documents})
        stats[f"{name}_windows"] = len(documents)
    return DatasetDict(tokenized), stats


def cut_warning(stats: dict[str, float], reading: Reading) -> str | None:
    """A plain word when most texts are longer than the model reads at once and it reads only part."""
    if stats["fraction_truncated"] > 0.5 and reading.long_text != "chunks":
        return (f"{stats['fraction_truncated']:.0%} of texts are cut at {reading.max_length} tokens "
                f"(long_text={reading.long_text}; median {stats['token_length_median']:g} tokens): see long_text "
                "to read them whole")
    return None


def load_tokenizer(model: str):
    tokenizer = hub.load_pretrained(AutoTokenizer.from_pretrained, model, "tokenizer")
    if not tokenizer.is_fast:
        raise PipelineError(f"the tokenizer of {model} has no fast (Rust) version: pick a model that has one")
    return tokenizer
