"""Metric types and sub types that ModelMill can measure, with units and default directions.

This module is imported by the config schema, so it must stay free of heavy imports and of
imports from ``modelmill.config``: plain constants and two small helpers only.

``CATALOG`` maps a metric type to ``{sub_type: (unit, higher_is_better, description)}``.
Olive's types come first (``accuracy``, ``latency``, ``throughput``, ``size_on_disk``,
``custom``); ModelMill adds ``llm``, ``memory``, ``similarity`` and ``lm_eval`` (an lm-eval task; Olive's
``LMEvaluator`` becomes such metrics).  ``custom`` and ``lm_eval`` accept any sub type name (their entries are
empty; see ``OPEN_METRIC_TYPES``).
"""

from __future__ import annotations

SubTypeInfo = tuple[str, bool, str]  # (unit, higher_is_better, description)

OLIVE_METRIC_TYPES = ("accuracy", "latency", "throughput", "size_on_disk", "custom")
MODELMILL_METRIC_TYPES = ("llm", "memory", "similarity", "lm_eval")
METRIC_TYPES = OLIVE_METRIC_TYPES + MODELMILL_METRIC_TYPES
# Metric types whose sub types are free-form names (lm_eval: whatever the task reports, e.g. acc, acc_norm; * = all).
OPEN_METRIC_TYPES = ("custom", "lm_eval")

LATENCY_SUB_TYPES = ("avg", "max", "min", "p50", "p75", "p90", "p95", "p99", "p999")
_STAT_WORDS = {"avg": "mean", "max": "maximum", "min": "minimum", "p50": "median", "p75": "75th percentile",
               "p90": "90th percentile", "p95": "95th percentile", "p99": "99th percentile",
               "p999": "99.9th percentile"}

CATALOG: dict[str, dict[str, SubTypeInfo]] = {
    "accuracy": {
        "accuracy_score": ("", True, "Share of samples whose predicted class (argmax of logits) equals the label."),
        "f1_score": ("", True, "F1 score of the predicted classes (binary, or averaged per metric_config average)."),
        "precision": ("", True, "Precision of the predicted classes."),
        "recall": ("", True, "Recall of the predicted classes."),
        "auroc": ("", True, "Area under the ROC curve (Olive; not measured by ModelMill)."),
        "perplexity": ("", False, "Perplexity of a causal LM on held-out local text (lower is better)."),
        "wer": ("", False, "Word error rate of speech recognition (Olive; not measured by ModelMill)."),
        "rtfx": ("", True, "Inverse real-time factor of speech recognition (Olive; not measured by ModelMill)."),
        "exact_match": ("", True, "Exact-match rate of generated answers (Olive; not measured by ModelMill)."),
        "relaxed_accuracy": ("", True, "Relaxed accuracy of generated answers (Olive; not measured by ModelMill)."),
        "word_sort_ratio": ("", True, "Word sort ratio of generated text (Olive; not measured by ModelMill)."),
    },
    "latency": {name: ("ms", False, f"{_STAT_WORDS[name].capitalize()} time of one inference (forward pass) "
                                    "over repeat_test_num runs after warmup_num warm-up runs.")
                for name in LATENCY_SUB_TYPES},
    "throughput": {name: ("samples/s", True, "Samples per second: batch_size * 1000 / mean latency_ms." if name == "avg"
                          else f"{_STAT_WORDS[name].capitalize()} of the per-run throughputs batch_size * 1000 / "
                               "latency_ms (max: the fastest run).")
                   for name in LATENCY_SUB_TYPES},
    "size_on_disk": {
        "bytes": ("bytes", False, "Bytes of the model files: ONNX files with their external data, or the weight "
                                  "files of a Hugging Face folder."),
    },
    "custom": {},
    "lm_eval": {},
    "llm": {
        "prefill_ms": ("ms", False, "Time to process a prompt of prompt_length tokens (default 128) and produce the "
                                    "first new token (median of the timed runs)."),
        "decode_tokens_per_s": ("tokens/s", True, "Greedy generation speed after the first token "
                                                  "(new_tokens, default 64)."),
        "perplexity": ("", False, "Perplexity on held-out local text (Python's pydoc topics): max_samples chunks of "
                                  "max_length tokens."),
    },
    "memory": {
        "peak_mb": ("MB", False, "Peak resident memory of a fresh process that loads the model and runs one "
                                 "inference (or a short generation)."),
    },
    "similarity": {
        "cosine_mean": ("", True, "Mean cosine similarity of mean-pooled embeddings against the PyTorch reference "
                                  "model over local sentences."),
        "cosine_min": ("", True, "Lowest cosine similarity of mean-pooled embeddings against the PyTorch reference."),
        "samples_per_s": ("samples/s", True, "Encoder throughput at metric_config batch_size and sequence_length."),
    },
}

# Sub types ModelMill actually measures (the others are accepted for Olive compatibility only).
MEASURED_SUB_TYPES: dict[str, tuple[str, ...] | None] = {
    "accuracy": ("accuracy_score", "f1_score", "precision", "recall", "perplexity"),
    "latency": LATENCY_SUB_TYPES,
    "throughput": LATENCY_SUB_TYPES,
    "size_on_disk": ("bytes",),
    "custom": None,
    "lm_eval": None,
    "llm": ("prefill_ms", "decode_tokens_per_s", "perplexity"),
    "memory": ("peak_mb",),
    "similarity": ("cosine_mean", "cosine_min", "samples_per_s"),
}


# Olive's accuracy metrics with backend "huggingface_metrics" name `evaluate` metrics (evaluate.load(name), a script
# from the hub); the four classification ones are measured here as the scores they are.
HF_EVALUATE_SUB_TYPES = {"accuracy": "accuracy_score", "f1": "f1_score", "precision": "precision", "recall": "recall"}


def sub_type_info(metric_type: str, sub_type: str) -> SubTypeInfo | None:
    """(unit, higher_is_better, description) of a known sub type, else None (e.g. any custom sub type)."""
    return CATALOG.get(metric_type, {}).get(sub_type)


def default_higher_is_better(metric_type: str, sub_type: str) -> bool:
    """The direction a sub type defaults to; custom and unknown sub types default to higher is better."""
    info = sub_type_info(metric_type, sub_type)
    return info[1] if info else True


def unit_of(metric_type: str, sub_type: str) -> str:
    info = sub_type_info(metric_type, sub_type)
    return info[0] if info else ""
