"""auto-opt's hint that OpenVINO measured faster than ONNX Runtime on this kind of CPU, for this kind of model.

A hint, never a silent switch (issue 15). bench/openvino.py, sample:minilm, batch 8 x 128, 2 threads (figures in
docs/openvino.md):

- AVX2 without VNNI: ORT INT8 was fastest (OpenVINO INT8 0.60x of it, OpenVINO's IRs 0.67x): no hint.
- AVX-512 with VNNI and bf16 (AMD EPYC): OpenVINO INT8 (NNCF) 1.47x ORT INT8, and OpenVINO's fp32 IR, which its
  CPU plugin runs in bf16 there (cosine 0.99999 to PyTorch), 1.83x ORT fp32.

Decoder LLMs get no hint: OpenVINO INT4 prefilled about 2x faster but decoded slower than ORT GenAI, which
finished 128 + 128 tokens first (bench/openvino_llm.py).
"""

from __future__ import annotations

from pathlib import Path

# The CPU feature each precision's OpenVINO win was measured with (Linux /proc/cpuinfo flag names; AMX implies it).
FEATURES = {"int8": ("avx512_vnni", "amx_int8"), "fp32": ("avx512_bf16", "amx_bf16")}
MEASURED = {"int8": "OpenVINO INT8 1.47x ORT INT8", "fp32": "OpenVINO's IR (bf16 compute) 1.83x ORT fp32"}


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux); empty where unknown."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def openvino_hint(encoder: bool, precision: str, provider: str, flags: set[str] | None = None) -> str | None:
    """The hint for an encoder built for the CPU provider at ``precision`` on a CPU with ``flags``; None where
    ONNX Runtime was the faster one (or nothing was measured)."""
    if not encoder or provider != "CPUExecutionProvider" or precision not in FEATURES:
        return None
    found = sorted(set(FEATURES[precision]) & (cpu_flags() if flags is None else flags))
    if not found:
        return None
    return (f"hint: on CPUs with {found[0]} (this one), OpenVINO ran encoders faster than ONNX Runtime "
            f"({MEASURED[precision]}, sample:minilm, bench/openvino.py). To try it: OnnxConversion → "
            f"OpenVINOConversion{' → OpenVINOQuantization' if precision == 'int8' else ''} with "
            "modelmill[openvino] (docs/openvino.md); this run stays on ONNX Runtime.")
