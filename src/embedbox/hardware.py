"""Run-time detection of what the machine can do fast (never assumed)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import torch

from embedbox.errors import InputError


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo is missing)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


# oneDNN ISA caps (ONEDNN_MAX_CPU_ISA) at or above which bf16 matmuls run natively.
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX10_", "ALL", "DEFAULT")
# What `compute="auto"` resolves to on a CPU when set: fp32 or bf16 (tests force bf16 with it).
COMPUTE_ENV = "EMBEDBOX_CPU_COMPUTE"


def onednn_allows_bf16() -> bool:
    """False when `ONEDNN_MAX_CPU_ISA` caps oneDNN (torch's CPU kernels) below native bf16."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return not cap or cap.startswith(_BF16_ISAS)


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX tiles or AVX-512 BF16) and oneDNN may use it."""
    if not onednn_allows_bf16():
        return False
    flags = cpu_flags()
    if flags:
        return bool({"amx_bf16", "avx512_bf16"} & flags)
    # Without /proc/cpuinfo ask torch's own CPUID probe. Its dispatch capability is no guide:
    # it reads "AVX512" on AMX machines.
    probes = [
        getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    return any(bool(p()) for p in probes if p is not None)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str | None) -> str:
    """`device` checked against this machine (None: the default device)."""
    if device is None:
        return default_device()
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} asked for, but CUDA is not available here (torch "
            f"{torch.__version__}); use device='cpu' or leave the device unset"
        )
    if kind not in ("cpu", "cuda"):
        raise InputError(f"device {device!r} is not supported; use 'cpu' or 'cuda'")
    return device


def auto_dtype(device: str) -> torch.dtype:
    """The fastest dtype that stays faithful: fp16 on CUDA, bf16 on CPUs with native bf16, else
    fp32. On a CPU, `$EMBEDBOX_CPU_COMPUTE` (fp32 or bf16) overrides the choice."""
    if device.startswith("cuda"):
        return torch.float16
    forced = os.environ.get(COMPUTE_ENV, "").strip().lower()
    if forced:
        if forced not in ("fp32", "bf16"):
            raise InputError(f"${COMPUTE_ENV} must be fp32 or bf16, not {forced!r}")
        return torch.bfloat16 if forced == "bf16" else torch.float32
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def auto_batch_tokens(device: str, dtype: torch.dtype) -> int:
    """Padded tokens per forward pass when the caller sets none.

    2048 on a CPU computing in bf16: on 2 AMX cores (Xeon, torch 2.11), over the same 1 000
    texts, 2048-token forwards ran 645 texts/s against 499 at 8192 (4096: 519, 16384: 407); a
    second run gave 629 against 540 (1024: 545, 512: 334). Identical vectors. 8192 elsewhere
    (CUDA, fp32 CPUs): the earlier default, not yet measured there against smaller budgets.
    """
    if torch.device(device).type == "cpu" and dtype == torch.bfloat16:
        return 2048
    return 8192


def describe() -> str:
    """One line naming the device, threads and fast paths, for benchmark and server banners."""
    flags = cpu_flags()
    fast = sorted({"amx_bf16", "avx512_bf16", "avx512_vnni", "avx2"} & flags)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu flags {fast}, gpu {gpu}"
    )
