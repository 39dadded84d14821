"""'auto' picks each fast path by the hardware at hand: the CPU-feature probe is mocked as both kinds of x86 CPU."""
from __future__ import annotations

import os

import pytest
import torch

from dcgan.config import RunConfig, TrainConfig
from dcgan.trainer import setup_hardware


@pytest.mark.parametrize("avx512_bf16, bf16", [(True, True), (False, False)], ids=["zen4-avx512-bf16", "zen3-avx2-only"])
def test_auto_turns_bf16_on_only_where_the_cpu_has_it_and_channels_last_on_every_cpu(monkeypatch, avx512_bf16, bf16):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    hw = setup_hardware(RunConfig(train=TrainConfig(device="cpu")))
    assert (hw.bf16, hw.channels_last) == (bf16, True)  # NHWC pays in fp32 too (1.2x on an AVX2-only Zen 3)
    assert hw.memory_format == torch.channels_last


def test_explicit_settings_beat_auto(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    hw = setup_hardware(RunConfig(train=TrainConfig(device="cpu", bf16="on", channels_last="off")))
    assert (hw.bf16, hw.channels_last) == (True, False)


def test_benchmarks_name_the_cpu_they_ran_on():
    from dcgan.machine import cpu_name

    name = cpu_name()
    assert name.endswith(f"({os.cpu_count()} cores)") and len(name) > len(" (2 cores)")


def test_the_cpu_description_tells_zen_3_from_zen_4():
    from dcgan.machine import describe_cpuinfo

    def cpuinfo(model: int, flags: str) -> str:
        first = (f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: {model}\n"
                 f"model name\t: AMD EPYC\nflags\t\t: {flags}\n")
        return first + "\nprocessor\t: 1\nmodel name\t: something else\n"

    assert describe_cpuinfo(cpuinfo(1, "fpu sse avx avx2 fma")) == "AMD EPYC, family 25 model 1, AVX2"
    assert describe_cpuinfo(cpuinfo(17, "avx2 avx512f avx512_bf16")) == "AMD EPYC, family 25 model 17, AVX512-BF16"
    assert describe_cpuinfo("model name\t: Some ARM core\n") == "Some ARM core"
    assert describe_cpuinfo("") == ""
