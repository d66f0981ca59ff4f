"""What the hardware computes fast: the device to use and the precision it has natively."""

import torch

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
