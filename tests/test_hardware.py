"""Run-time CPU feature detection that picks bf16 for `compute="auto"`."""

from __future__ import annotations

import pytest
import torch

from embedbox import hardware
from embedbox.errors import InputError


@pytest.mark.parametrize(
    "flags, amx, bf16, want",
    [
        (frozenset({"avx2", "amx_bf16"}), False, False, True),  # /proc/cpuinfo decides
        (frozenset({"avx2", "avx512f"}), True, True, False),
        (frozenset(), True, False, True),  # no cpuinfo: torch's CPUID probe (an AMX machine)
        (frozenset(), False, True, True),
        (frozenset(), False, False, False),
    ],
)
def test_fast_bf16_detection(
    monkeypatch: pytest.MonkeyPatch, flags: frozenset[str], amx: bool, bf16: bool, want: bool
) -> None:
    hardware.cpu_has_fast_bf16.cache_clear()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    try:
        assert hardware.cpu_has_fast_bf16() is want
    finally:
        hardware.cpu_has_fast_bf16.cache_clear()


@pytest.mark.parametrize(
    "cap, want", [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("", True)]
)
def test_onednn_isa_cap_turns_off_bf16(
    monkeypatch: pytest.MonkeyPatch, cap: str, want: bool
) -> None:
    """Under ONEDNN_MAX_CPU_ISA=AVX2 torch's bf16 is emulated (about 6x slower than fp32)."""
    hardware.cpu_has_fast_bf16.cache_clear()
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    try:
        assert hardware.cpu_has_fast_bf16() is want
    finally:
        hardware.cpu_has_fast_bf16.cache_clear()


def test_compute_env_overrides_auto_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(hardware.COMPUTE_ENV, "bf16")
    assert hardware.auto_dtype("cpu") == torch.bfloat16
    monkeypatch.setenv(hardware.COMPUTE_ENV, "fp32")
    assert hardware.auto_dtype("cpu") == torch.float32
    assert hardware.auto_dtype("cuda") == torch.float16
    monkeypatch.setenv(hardware.COMPUTE_ENV, "int4")
    with pytest.raises(InputError, match="EMBEDBOX_CPU_COMPUTE"):
        hardware.auto_dtype("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_asking_for_cuda_without_it_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"CUDA is not available here.*device='cpu'"):
        hardware.check_device("cuda")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        hardware.check_device("gpu0")
    assert hardware.check_device(None) == "cpu" and hardware.check_device("cpu") == "cpu"
