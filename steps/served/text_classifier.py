"""A fine-tuned text classifier's reading and scoring, the same in training and serving: which
tokens of a text longer than the model's window it reads, how a text's windows are scored (in
ONNX Runtime or in torch) and pooled into its answer, and the answer in the shape of MLflow's
transformers text-classification pyfunc (a multi-label model's: each text's list of tags). tokenize cuts the training texts with `encode`; the
served model (model.py beside this file) reads every request with it. Imports nothing of
`steps`: it ships inside each registered model as its code.

long_text:
  head       the first max_length tokens (the Transformers default truncation);
  head_tail  the first quarter and the last three quarters of the window (Sun et al. 2019, "How
             to Fine-Tune BERT for Text Classification?": head 128 + tail 382 of 512 read long
             reviews best among the truncations they tried);
  chunks     windows of max_length tokens, each overlapping the one before by `stride` tokens; a
             text's answer is the mean of its windows' class probabilities (each window is a view
             of the same document: no one window's confidence should outvote the rest).

The blend: where train found that a lexical model (TF-IDF words and character n-grams with
logistic regression, `lexical.joblib`) adds to the encoder on the validation split, a text's
probabilities are `weight * lexical + (1 - weight) * encoder`; a weight of 0 is the encoder alone,
1 the lexical model alone (the encoder is then not run).

A text pair (question and answer, subject and body) is read as the tokenizer's pair: with head,
the longer of the two is cut first (Transformers' longest_first); with chunks, the windows run
over the second text, each repeating the first, cut to at most half the window (as extractive
question answering reads a question and a long context). head_tail reads single texts only.
"""

import os

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_STATE
from transformers import AutoConfig, AutoTokenizer

LONG_TEXT = ("head", "head_tail", "chunks")
ONNX_GRAPH, TOKENIZER, CHECKPOINT = "model.onnx", "tokenizer", "checkpoint"  # the served model's artifacts
LEXICAL = "lexical.joblib"  # the blend's lexical model: an artifact of the served model, a file of train's checkpoint
HEAD_SHARE = 0.25  # head_tail: the head's share of the window, as Sun et al.'s 128 of 510


def head_tail(special: list[int], max_length: int) -> list[int]:
    """The positions a head_tail window keeps of one encoded text, given its special-tokens mask:
    every special token, the first quarter of the room left and the last three quarters."""
    content = [i for i, is_special in enumerate(special) if not is_special]
    budget = max_length - (len(special) - len(content))
    if len(content) <= budget:
        return list(range(len(special)))
    head = int(budget * HEAD_SHARE)
    dropped = set(content[head:len(content) - (budget - head)])
    return [i for i in range(len(special)) if i not in dropped]


def first_of_pair(tokenizer, texts: list[str], max_length: int) -> list[str]:
    """chunks of a pair: each first text cut (at a token's end) to half the window's room at most,
    so that every window also holds part of the second."""
    room = (max_length - tokenizer.num_special_tokens_to_add(pair=True)) // 2
    spans = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=room,
                      return_offsets_mapping=True)["offset_mapping"]
    return [text[:offsets[-1][1]] if offsets else text for text, offsets in zip(texts, spans)]


def encode(tokenizer, texts: list[str], max_length: int, long_text: str = "head", stride: int = 0,
           pairs: list[str] | None = None) -> tuple[dict[str, list[list[int]]], list[int]]:
    """The model's inputs (input_ids, attention_mask, token_type_ids where the tokenizer makes
    them), one row per window, unpadded; and each window's text, as an index into `texts`.
    `pairs`: each text's second text, for a pair task. Every text (or pair), an empty one too,
    gets at least one window."""
    texts, pairs = list(texts), None if pairs is None else list(pairs)
    if pairs is not None and long_text == "head_tail":
        raise ValueError("long_text=head_tail reads single texts: pick head or chunks for text pairs")
    if long_text == "chunks":
        if pairs is not None:
            texts = first_of_pair(tokenizer, texts, max_length)
        encoded = tokenizer(texts, pairs, truncation="only_second" if pairs is not None else True,
                            max_length=max_length, stride=stride, return_overflowing_tokens=True)
        documents = list(encoded.pop("overflow_to_sample_mapping"))
        return dict(encoded), documents
    if long_text == "head_tail":
        encoded = tokenizer(texts, return_special_tokens_mask=True, verbose=False)
        kept = [head_tail(special, max_length) for special in encoded.pop("special_tokens_mask")]
        return ({name: [[row[i] for i in keep] for row, keep in zip(rows, kept)] for name, rows in encoded.items()},
                list(range(len(texts))))
    if long_text != "head":
        raise ValueError(f"long_text={long_text!r}: pick one of {', '.join(LONG_TEXT)}")
    return dict(tokenizer(texts, pairs, truncation=True, max_length=max_length)), list(range(len(texts)))


def pool(probabilities: np.ndarray, documents, count: int) -> np.ndarray:
    """Each text's class probabilities: the mean over its windows' (rows of `probabilities`)."""
    documents = np.asarray(documents)
    sums = np.zeros((count, probabilities.shape[1]))
    np.add.at(sums, documents, probabilities)
    return sums / np.bincount(documents, minlength=count)[:, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits.astype(np.float64) - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def activate(logits: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Logits as probabilities: the classes' (softmax), or each tag's own (sigmoid) for a multi-label model."""
    if multi_label:
        return 1 / (1 + np.exp(-logits.astype(np.float64)))
    return softmax(logits)


def blended(encoder: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    """The blend's probabilities: `weight` of the lexical model's and the rest of the encoder's."""
    return weight * np.asarray(lexical, dtype=np.float64) + (1 - weight) * np.asarray(encoder, dtype=np.float64)


def joined_texts(texts: list[str], pairs: list[str] | None = None) -> list[str]:
    """What the lexical model reads of a row: its text, or a pair's two joined by a line break (it reads
    words, not pairs)."""
    return list(texts) if pairs is None else [f"{text}\n{pair}" for text, pair in zip(texts, pairs)]


def load_lexical(path: str):
    """The blend's lexical model (a scikit-learn pipeline saved by train with joblib)."""
    import joblib

    return joblib.load(path)


def _strings(values) -> list[str]:
    return ["" if text is None else str(text) for text in values]


def texts_of(model_input, pair_columns=None) -> tuple[list[str], list[str] | None]:
    """The texts of a request, and their second texts for a pair task (None otherwise). Through
    MLflow's pyfunc they come as a DataFrame, whatever the caller sent: one column, or a pair
    task's two named columns; called directly, a single-text model also takes a list, a Series
    or one string."""
    if pair_columns:
        missing = [column for column in pair_columns if not isinstance(model_input, pd.DataFrame)
                   or column not in model_input.columns]
        if missing:
            raise MlflowException.invalid_parameter_value(
                f"this model reads text pairs: send columns {' and '.join(pair_columns)} "
                f"(missing {', '.join(missing)})")
        return _strings(model_input[pair_columns[0]]), _strings(model_input[pair_columns[1]])
    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] != 1:
            raise MlflowException.invalid_parameter_value(
                f"expected one column of texts, got columns {list(model_input.columns)}")
        model_input = model_input.iloc[:, 0]
    return ([model_input] if isinstance(model_input, str) else _strings(model_input)), None


def answer(probabilities: np.ndarray, labels: list[str], top_k) -> pd.DataFrame:
    """Rows as the transformers pipeline gives them: with top_k "" (its "not given") the best label
    and its score; else one column per rank, top_k of them (None: all), ties in label order."""
    ranked = np.argsort(-probabilities, axis=1, kind="stable")
    if top_k == "":
        best = ranked[:, 0]
        return pd.DataFrame({"label": [labels[i] for i in best],
                             "score": probabilities[np.arange(len(best)), best]})
    return pd.DataFrame([[{"label": labels[i], "score": float(row[i])} for i in ranks[:top_k]]
                         for row, ranks in zip(probabilities, ranked)])


def answered_tags(probabilities, thresholds) -> np.ndarray:
    """Rows of tag probabilities as rows of decisions: a tag is answered where its probability reaches its threshold."""
    return np.asarray(probabilities) >= np.asarray(thresholds)


def tags_answer(probabilities: np.ndarray, labels: list[str], thresholds: list[float], tag_scores: bool) -> pd.DataFrame:
    """A multi-label model's rows: `tags`, the list of the tags whose probability reaches their
    threshold (in the labels' order, as predict writes them; empty when none does), and with
    tag_scores each tag's probability as score_<tag>."""
    frame = pd.DataFrame({"tags": [[label for label, on in zip(labels, row) if on]
                                   for row in answered_tags(probabilities, thresholds)]})
    if tag_scores:
        frame = frame.assign(**{f"score_{label}": probabilities[:, i] for i, label in enumerate(labels)})
    return frame


def onnx_logits(path: str, threads: int):
    """A function of padded numpy inputs to logits, through ONNX Runtime; and the inputs it takes."""
    import onnxruntime as ort
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf, NoSuchFile

    options = ort.SessionOptions()
    # one thread per physical core: hyper-threads share a core's vector units, so more only contend
    options.intra_op_num_threads = threads or _physical_cores()
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except (NoSuchFile, InvalidProtobuf, InvalidGraph, Fail) as err:
        raise MlflowException(f"cannot load the ONNX model at {path} ({str(err).splitlines()[0][:160]}): register "
                              "the checkpoint again with serving_format=onnx or onnx-int8", INVALID_STATE) from None
    names = [graph_input.name for graph_input in session.get_inputs()]
    return (lambda batch: session.run(["logits"], {name: batch[name] for name in names})[0]), names


def _physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def torch_logits(folder: str, dtype: str):
    """A function of padded numpy inputs to float32 logits, through the checkpoint in torch (a GPU
    when one is visible); and the inputs it takes."""
    import inspect

    import torch
    from transformers import AutoModelForSequenceClassification

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype, torch.float32)).to(device).eval()
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids")
             if name in inspect.signature(model.forward).parameters]

    def logits(batch):
        with torch.inference_mode():
            return model(**{name: torch.from_numpy(batch[name]).to(device) for name in names}).logits.float().cpu().numpy()
    return logits, names


class Scorer:
    """Texts in, each text's class probabilities out, read as the model was trained."""

    def __init__(self, logits, input_names, folder: str, reading: dict, lexical=None, weight: float = 0.0):
        """logits: padded inputs -> logits; folder: the tokenizer's files and config.json (the labels);
        lexical and weight: the blend's lexical model and its weight (None and 0: the encoder alone)."""
        self.logits, self.input_names = logits, input_names
        self.lexical, self.weight = (lexical, weight) if lexical is not None and weight > 0 else (None, 0.0)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
        self.labels = [config.id2label[i] for i in range(config.num_labels)]
        self.multi_label = config.problem_type == "multi_label_classification"  # a sigmoid a tag
        self.reading = reading  # max_length, long_text, stride

    def probabilities(self, texts: list[str], batch_size: int, pairs: list[str] | None = None) -> np.ndarray:
        if self.lexical is None:
            return self.encoder_probabilities(texts, batch_size, pairs)
        lexical = self.lexical.predict_proba(joined_texts(texts, pairs))
        if self.weight >= 1:
            return np.asarray(lexical, dtype=np.float64)
        return blended(self.encoder_probabilities(texts, batch_size, pairs), lexical, self.weight)

    def encoder_probabilities(self, texts: list[str], batch_size: int, pairs: list[str] | None = None) -> np.ndarray:
        inputs, documents = encode(self.tokenizer, texts, self.reading["max_length"], self.reading["long_text"],
                                   self.reading["stride"], pairs)
        windows = np.empty((len(documents), len(self.labels)), dtype=np.float32)
        order = np.argsort([len(ids) for ids in inputs["input_ids"]], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = self.tokenizer.pad({name: [inputs[name][i] for i in rows] for name in self.input_names},
                                       return_tensors="np")
            windows[rows] = self.logits(batch)
        return pool(activate(windows, self.multi_label), documents, len(texts))


def checkpoint_scorer(folder: str, reading: dict, dtype: str = "fp32", weight: float = 0.0) -> Scorer:
    """A Scorer of train's checkpoint folder in torch, blended with the lexical model it holds at
    `weight`: the torch format, and the fp32 reference every served format is compared with."""
    lexical = load_lexical(os.path.join(folder, LEXICAL)) if weight > 0 else None
    return Scorer(*torch_logits(folder, dtype), folder, reading, lexical, weight)


def onnx_scorer(graph: str, folder: str, reading: dict, threads: int = 0, lexical: str = "",
                weight: float = 0.0) -> Scorer:
    """A Scorer of an exported graph in ONNX Runtime; folder: the tokenizer's files and config.json;
    lexical: the blend's lexical model file, blended at `weight`."""
    return Scorer(*onnx_logits(graph, threads), folder, reading, load_lexical(lexical) if weight > 0 else None,
                  weight)
