"""Run-time CPU feature detection that picks bf16 for `compute="auto"`."""

from __future__ import annotations

import pytest
import torch

from embedbox import hardware


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
