"""Metric presets for `modelmill evaluate --metrics NAME,...`: short names for common metric specs."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "latency": {"name": "latency", "type": "latency",
                "sub_types": [{"name": n} for n in ("avg", "min", "p50", "p90", "p95", "max")],
                "metric_config": {"warmup_num": 3, "repeat_test_num": 10}},
    "throughput": {"name": "throughput", "type": "throughput", "sub_types": [{"name": "avg"}],
                   "metric_config": {"warmup_num": 3, "repeat_test_num": 10}},
    "size": {"name": "size", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]},
    "llm": {"name": "llm", "type": "llm", "sub_types": [{"name": "prefill_ms"}, {"name": "decode_tokens_per_s"}]},
    "perplexity": {"name": "quality", "type": "llm", "sub_types": [{"name": "perplexity"}]},
    "memory": {"name": "memory", "type": "memory", "sub_types": [{"name": "peak_mb"}]},
    "similarity": {"name": "similarity", "type": "similarity",
                   "sub_types": [{"name": "cosine_mean"}, {"name": "cosine_min"}, {"name": "samples_per_s"}]},
}

DESCRIPTIONS: dict[str, str] = {
    "latency": "time of one inference: avg, min, p50, p90, p95, max (ms)",
    "throughput": "samples per second (avg)",
    "size": "bytes of the model files on disk",
    "llm": "prefill time (ms) and greedy decode speed (tokens/s)",
    "perplexity": "perplexity on local held-out text (lower is better)",
    "memory": "peak memory of a fresh process that loads and runs the model (MB)",
    "similarity": "cosine similarity of embeddings against the PyTorch source model, and samples/s",
}
"""What each preset measures, in a line (the editor's metric picker shows it)."""

AVAILABLE = {"genai": ("llm", "perplexity", "size", "memory"),
             "onnx": ("latency", "throughput", "size", "memory", "similarity"),
             "hf_causal": ("llm", "perplexity", "size", "memory", "latency", "throughput"),
             "hf": ("latency", "throughput", "size", "memory"),
             "composite": ("size",)}
"""The presets that can measure each kind of model (``profile``), the defaults first."""

DEFAULTS = {"genai": ("llm", "perplexity", "size", "memory"), "onnx": ("latency", "throughput", "size"),
            "hf_causal": ("llm", "perplexity", "size"), "hf": ("latency", "size"),
            "composite": ("size",)}  # SplitModel's parts: no one session runs the model


def metrics_for(names: list[str]) -> list[dict[str, Any]]:
    """Metric dicts for preset names; unknown names raise ValueError listing the known ones."""
    metrics = []
    for name in names:
        if name not in PRESETS:
            raise ValueError(f"unknown metric '{name}'; use any of: {', '.join(PRESETS)}")
        preset = dict(PRESETS[name])
        config = preset.pop("metric_config", None)
        if config:
            preset["sub_types"] = [{**sub, "metric_config": config} for sub in preset["sub_types"]]
        metrics.append(preset)
    return metrics


def profile(kind: str, is_genai: bool, is_causal: bool) -> str:
    """The kind of model as the presets see it: genai, onnx, hf_causal, hf or composite."""
    if is_genai:
        return "genai"
    if kind == "hf":
        return "hf_causal" if is_causal else "hf"
    return "composite" if kind == "composite" else "onnx"
