"""A fine-tuned text classifier as an ONNX Runtime graph: exported from its checkpoint, fused by
ONNX Runtime's transformer optimizer, and optionally quantized to int8.

Input:  a checkpoint folder saved by `Trainer.save_model` or `save_pretrained` (config.json with
        id2label, weights, tokenizer files) of a BERT-like encoder.
Output: an ONNX graph at a path of the caller's, taking input_ids, attention_mask (and
        token_type_ids where the model takes them), int64 [batch, sequence], and answering
        logits, float32 [batch, labels]; and the counts of the fused operators in it.
"""

import collections
import inspect
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from onnxruntime.transformers.optimizer import optimize_model
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from steps.core.errors import PipelineError

# What the optimizer fuses in a BERT-like encoder, one node per layer (or per model, for the
# embeddings); attention fused into one node is where the speed comes from.
FUSED_OPERATORS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "EmbedLayerNormalization",
                   "BiasGelu", "FastGelu", "Gelu")
ATTENTION_OPERATORS = ("Attention", "MultiHeadAttention")
# Old enough for every ONNX Runtime the optimizer supports, new enough for LayerNormalization as one op.
OPSET = 17


class _Logits(torch.nn.Module):
    """The classifier with positional inputs and logits as its only output, as the exporter wants."""

    def __init__(self, model, input_names):
        super().__init__()
        self.model, self.input_names = model, input_names

    def forward(self, *inputs):
        return self.model(**dict(zip(self.input_names, inputs))).logits


def input_names(model, tokenizer) -> list[str]:
    """What the tokenizer produces that the model takes: token_type_ids for BERT, not for DistilBERT."""
    return [name for name in tokenizer.model_input_names if name in inspect.signature(model.forward).parameters]


def export(checkpoint_dir: str, onnx_path: Path) -> None:
    """The checkpoint's classifier as an ONNX graph with a dynamic batch and sequence length, traced
    by TorchScript (dynamo=False: the dynamo exporter needs onnxscript, which the project does not
    install). Eager attention exports as MatMul and Softmax, which the optimizer fuses; SDPA's
    export it does not fuse (all-MiniLM-L6-v2: 0 of 6 attention layers)."""
    model = AutoModelForSequenceClassification.from_pretrained(checkpoint_dir, attn_implementation="eager",
                                                               dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint_dir)
    names = input_names(model, tokenizer)
    example = tokenizer(["an example message", "and a longer example message"], padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "sequence"}
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer warns that the mask code's shape checks become constants and that indexing
        # exports as Gather: both hold for any batch and length (tests/test_onnx.py checks the
        # graph against torch on texts of many lengths).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(_Logits(model, names), tuple(example[name] for name in names), str(onnx_path),
                          input_names=names, output_names=["logits"], dynamic_axes={name: axes for name in names},
                          opset_version=OPSET, dynamo=False)


def fused_counts(model: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each fused operator the graph holds."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return {op: counts[op] for op in FUSED_OPERATORS}


def optimize(onnx_path: Path, fused_path: Path, num_heads: int, hidden_size: int) -> dict[str, int]:
    """The graph with ONNX Runtime's BERT fusions (attention, layer norms, GELU) applied, saved at
    `fused_path`; its fused-operator counts. No fused attention means the optimizer did not recognise
    the model (an SDPA export, num_heads or hidden_size that do not match): an error, not a graph
    served without its fusions unnoticed."""
    optimized = optimize_model(str(onnx_path), model_type="bert", num_heads=num_heads, hidden_size=hidden_size)
    counts = fused_counts(optimized.model)
    if not any(counts[op] for op in ATTENTION_OPERATORS):
        raise PipelineError(f"ONNX Runtime fused no attention in {onnx_path.name} (fused: {counts}): "
                            "export a BERT-like checkpoint, or register it with serving_format=transformers")
    optimized.save_model_to_file(str(fused_path))
    return counts


def quantize(fused_path: Path, int8_path: Path) -> None:
    """Weights of the fused graph's MatMuls and attention as int8, activations quantized per call.
    Shape inference cannot type the fused contrib operators' outputs; DefaultTensorType says they are float."""
    quantize_dynamic(fused_path, int8_path, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def build(checkpoint_dir: str, onnx_path: Path, int8: bool) -> dict[str, int]:
    """The checkpoint exported, fused and, if `int8`, quantized, at `onnx_path` (the graphs before
    that in a temporary folder); its fused-operator counts."""
    config = AutoConfig.from_pretrained(checkpoint_dir)
    with tempfile.TemporaryDirectory() as folder:
        exported, fused = Path(folder, "exported.onnx"), Path(folder, "fused.onnx")
        export(checkpoint_dir, exported)
        counts = optimize(exported, fused if int8 else onnx_path, config.num_attention_heads, config.hidden_size)
        if int8:
            quantize(fused, onnx_path)
    return counts
