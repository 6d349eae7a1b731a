"""Latency and throughput of one forward pass: ONNX models in ONNX Runtime, HF folders in PyTorch eager.

Inputs come from the model's input metadata: dynamic batch dims take ``batch_size`` (default 1),
sequence dims ``sequence_length`` (default 128), token ids stay within the vocabulary of config.json
(or genai_config.json) beside the model (below 100 without one), masks are ones and past KV caches
have length 0. For a genai model this is one prefill pass of the decoder over the prompt.

``metric_config`` keys: ``warmup_num`` (10), ``repeat_test_num`` (20), ``sleep_num`` (0 s), ``batch_size``,
``sequence_length``, ``intra_op_num_threads`` (ORT default when unset; torch.set_num_threads for HF).
"""

from __future__ import annotations

from typing import Any

from modelmill.engine.model import ModelRef
from modelmill.evaluate.openvino_runtime import model_session
from modelmill.evaluate.runtime import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEQUENCE_LENGTH,
    EvaluationError,
    Timings,
    forward_arg_names,
    int_option,
    load_hf,
    random_feeds,
    time_runs,
    token_dims,
)
from modelmill.remote_code import is_trusted

DEFAULT_WARMUP_NUM = 10
DEFAULT_REPEAT_TEST_NUM = 20


def _run_settings(metric_config: dict[str, Any]) -> tuple[int, int, float, int, int]:
    return (int_option(metric_config, "warmup_num", DEFAULT_WARMUP_NUM),
            int_option(metric_config, "repeat_test_num", DEFAULT_REPEAT_TEST_NUM),
            float(metric_config.get("sleep_num") or 0),
            int_option(metric_config, "batch_size", DEFAULT_BATCH_SIZE),
            int_option(metric_config, "sequence_length", DEFAULT_SEQUENCE_LENGTH))


def measure(model: ModelRef, metric_config: dict[str, Any] | None = None, *,
            execution_provider: str = "CPUExecutionProvider", data_config: dict[str, Any] | None = None) -> Timings:
    """Time repeated forward passes of ``model`` (kind onnx, openvino or hf)."""
    metric_config = metric_config or {}
    if model.kind in ("onnx", "openvino"):
        return measure_onnx(model, metric_config, execution_provider=execution_provider, data_config=data_config)
    if model.kind == "hf":
        return measure_hf(model, metric_config)
    raise EvaluationError(f"latency of a {model.kind} model ({model.path}) is not supported",
                          fix="convert it to ONNX first, or measure it with a custom metric")


def measure_onnx(model: ModelRef, metric_config: dict[str, Any], *, execution_provider: str = "CPUExecutionProvider",
                 data_config: dict[str, Any] | None = None) -> Timings:
    warmup, repeat, sleep, batch, seq = _run_settings(metric_config)
    session = model_session(model, execution_provider, metric_config.get("intra_op_num_threads"))
    feeds = None
    if data_config:
        feeds = _data_config_feeds(session, model, data_config, seq)
        first = next(iter(feeds.values()), None)
        batch = int(first.shape[0]) if first is not None and first.ndim else batch
    if feeds is None:
        feeds = random_feeds(session, model, batch, seq)
    output_names = [meta.name for meta in session.get_outputs()]
    try:
        session.run(output_names, feeds)
    except Exception as exc:  # noqa: BLE001
        raise EvaluationError(f"running {model.model_file} with generated inputs failed: {exc}",
                              fix="set metric_config batch_size/sequence_length to shapes the model accepts") from exc
    latencies = time_runs(lambda: session.run(output_names, feeds), warmup, repeat, sleep)
    return Timings(latencies, batch)


def _data_config_feeds(session: Any, model: ModelRef, data_config: dict[str, Any], seq: int) -> dict[str, Any]:
    """The first sample of an Olive data config (dummy containers, local text), as the timed input."""
    from modelmill.engine.data import calibration_feeds
    from modelmill.evaluate.runtime import session_specs

    try:
        samples = calibration_feeds(model, data_config, session_specs(session), 1, seq)
    except Exception as exc:  # noqa: BLE001
        raise EvaluationError(f"latency: cannot make inputs from data_config {data_config.get('name')!r}: {exc}",
                              fix="use a DummyDataContainer or local_dataset data config, or leave data_config out "
                                  "to time generated inputs") from exc
    return samples[0]


def measure_hf(model: ModelRef, metric_config: dict[str, Any]) -> Timings:
    """PyTorch eager latency of one forward pass of an HF folder, with the same generated token inputs."""
    import numpy as np
    import torch

    warmup, repeat, sleep, batch, seq = _run_settings(metric_config)
    hf_model = load_hf(model.path, task=model.attributes.get("task"), trust_remote_code=is_trusted(model))
    accepted = forward_arg_names(hf_model)
    vocab = token_dims(model)["vocab_size"]
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, vocab, size=(batch, seq)).astype(np.int64))
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in accepted:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    if "use_cache" in accepted:
        inputs["use_cache"] = False
    threads = metric_config.get("intra_op_num_threads")
    previous = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(int(threads))
        with torch.inference_mode():
            latencies = time_runs(lambda: hf_model(**inputs), warmup, repeat, sleep)
    finally:
        torch.set_num_threads(previous)
    return Timings(latencies, batch)
