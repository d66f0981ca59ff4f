"""What the hardware computes fast: the device to use and the precision it has natively."""

import os
import re
from pathlib import Path

import torch

# The flags that decide bf16 and int8 speed on a CPU: named beside every speed figure.
CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "amx_int8", "avx512_vnni", "avx_vnni")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def has_accelerator() -> bool:
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def resolve_device(device: str) -> str:
    """"auto": a CUDA GPU when there is one, else the CPU; any other value as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_precision(requested: str, on_cpu: bool) -> str:
    """bf16 where the hardware computes it natively (CPUs with AMX or AVX-512 bf16, Ampere or
    newer GPUs), fp16 on older GPUs, fp32 otherwise (Apple's MPS too); or what was requested."""
    if requested != "auto":
        return requested
    if on_cpu:
        return "bf16" if torch.backends.cpu.get_cpu_capability() in ("AVX512", "AMX") and \
            torch.cpu._is_avx512_bf16_supported() else "fp32"
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def cpu_description() -> str:
    """The CPU's model name, its logical cores and which of CPU_FLAGS it has."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)
    flags = set(re.search(r"^flags\s*:\s*(.+)$", info, re.MULTILINE).group(1).split()) if "flags" in info else set()
    return (f"{name.group(1) if name else 'unknown CPU'}, {os.cpu_count()} logical cores; "
            + ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in CPU_FLAGS))


def training_machine(on_cpu: bool) -> str:
    """What a training ran on, for the model card: the GPU's name, or the CPU's description."""
    return torch.cuda.get_device_name() if not on_cpu and torch.cuda.is_available() else cpu_description()
