"""Encoder similarity against the PyTorch reference, encoder throughput, and peak memory in a child process."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.model import ModelRef
from modelmill.evaluate import evaluate_model
from modelmill.evaluate.runtime import EvaluationError
from modelmill.evaluate.similarity import cosine_similarity

SMALL = {"num_samples": 12, "max_length": 32, "batch_size": 4}


def _similarity_metric() -> dict[str, object]:
    return {"name": "sim", "type": "similarity", "sub_types": [
        {"name": "cosine_mean", "priority": 1, "metric_config": SMALL},
        {"name": "cosine_min", "priority": 2, "metric_config": SMALL},
        {"name": "samples_per_s", "metric_config": {"batch_size": 2, "sequence_length": 16, "warmup_num": 1,
                                                     "repeat_test_num": 3, "intra_op_num_threads": 1}}]}


def test_onnx_export_matches_reference(tiny_bert_onnx: ModelRef, tiny_bert_dir: Path) -> None:
    result = evaluate_model(tiny_bert_onnx, [_similarity_metric()], reference=ModelRef("hf", tiny_bert_dir))
    values = {v.sub_type: v for v in result.values}
    assert values["cosine_mean"].value > 0.999 and values["cosine_min"].value > 0.999
    assert values["cosine_min"].value <= values["cosine_mean"].value + 1e-12
    assert values["cosine_mean"].higher_is_better and values["cosine_mean"].unit == ""
    assert values["samples_per_s"].value > 0 and values["samples_per_s"].unit == "samples/s"


def test_perturbed_model_is_less_similar(perturbed_bert_onnx: ModelRef, tiny_bert_dir: Path) -> None:
    # the reference comes from the model's source_hf_path attribute this time
    model = perturbed_bert_onnx.with_attributes(source_hf_path=str(tiny_bert_dir))
    scores = cosine_similarity(model, None, SMALL)
    assert scores["cosine_mean"] < 0.99
    assert scores["cosine_min"] <= scores["cosine_mean"]


def test_similarity_needs_a_reference(tiny_bert_onnx: ModelRef) -> None:
    with pytest.raises(EvaluationError, match="no PyTorch reference"):
        cosine_similarity(tiny_bert_onnx, None, SMALL)


def test_peak_memory_in_child_process(tiny_bert_onnx: ModelRef, tiny_genai: ModelRef) -> None:
    metric = {"name": "memory", "type": "memory",
              "sub_types": [{"name": "peak_mb", "metric_config": {"sequence_length": 16, "new_tokens": 4}}]}
    onnx_mb = evaluate_model(tiny_bert_onnx, [metric]).values[0]
    genai_mb = evaluate_model(tiny_genai, [metric]).values[0]
    for value in (onnx_mb, genai_mb):
        assert 10 < value.value < 2000, value  # a Python process with onnxruntime, not the test process
        assert value.unit == "MB" and not value.higher_is_better


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="Linux only: ru_maxrss survives execve there")
def test_peak_memory_leaves_out_the_callers_memory(tiny_bert_onnx: ModelRef) -> None:
    """A caller holding 1 GiB used to read >1 GiB: ru_maxrss keeps the pre-exec image's peak on Linux."""
    metric = {"name": "memory", "type": "memory", "sub_types": [{"name": "peak_mb"}]}
    alone = evaluate_model(tiny_bert_onnx, [metric]).values[0].value
    ballast = bytearray(1024 ** 3)
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])  # touch every page so that it is resident
    held = evaluate_model(tiny_bert_onnx, [metric]).values[0].value
    del ballast
    assert held < 900, f"the child reported {held} MB while the caller held 1 GiB ({alone} MB alone)"
    assert abs(held - alone) < 0.5 * alone
