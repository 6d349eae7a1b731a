"""LLMs exported to OpenVINO IR (OpenVINOOptimumConversion) in openvino-genai's LLMPipeline, for chat/generate.

A folder qualifies when it holds ``openvino_model.xml`` with the ``openvino_tokenizer``/``openvino_detokenizer``
IRs beside it (what optimum-intel writes for a text-generation-with-past export).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

from modelmill.errors import ModelMillError


def is_openvino_llm(folder: Path) -> bool:
    return all((folder / f"{name}.xml").exists()
               for name in ("openvino_model", "openvino_tokenizer", "openvino_detokenizer"))


def pipeline(folder: Path, device: str = "CPU", num_threads: int | None = None) -> Any:
    """openvino_genai.LLMPipeline on ``folder``."""
    if importlib.util.find_spec("openvino_genai") is None:
        raise ModelMillError(f"{folder} is an OpenVINO LLM, and openvino-genai is not installed here",
                             fix="pip install 'modelmill[openvino]'")
    import openvino_genai

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(num_threads)} if num_threads else {}
    return openvino_genai.LLMPipeline(str(folder), device, **config)


def generate(folder: Path, prompt: str, max_new_tokens: int = 64, *, chat_template: bool = False,
             pipe: Any = None, streamer: Any = None) -> tuple[str, dict[str, float]]:
    """Greedy generation of up to ``max_new_tokens`` after ``prompt``; the text and openvino-genai's timings
    (prefill = time to first token, decode tokens/s)."""
    import openvino_genai

    pipe = pipe or pipeline(folder)
    config = openvino_genai.GenerationConfig()
    config.max_new_tokens = max_new_tokens
    config.do_sample = False
    config.apply_chat_template = chat_template
    start = time.perf_counter()
    result = pipe.generate([prompt], config, streamer) if streamer else pipe.generate([prompt], config)
    elapsed = time.perf_counter() - start
    metrics = result.perf_metrics
    new_tokens = int(metrics.get_num_generated_tokens())
    stats = {"prompt_tokens": float(metrics.get_num_input_tokens()), "new_tokens": float(new_tokens),
             "ttft_s": metrics.get_ttft().mean / 1000.0, "decode_tok_s": metrics.get_throughput().mean,
             "total_s": elapsed}
    return result.texts[0], stats
