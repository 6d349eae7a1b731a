"""LLM metrics: prefill latency, decode speed and perplexity, for ORT GenAI, plain ONNX and HF causal LMs.

- ORT GenAI folders (genai_config.json): onnxruntime-genai 0.18's generator loop
  (``GeneratorParams`` → ``Generator`` → ``append_tokens`` → ``generate_next_token`` until ``is_done``).
- HF folders: ``transformers`` ``generate`` (greedy), timed through a streamer.
- Plain ONNX causal LMs (a ``logits`` output): prefill = one forward pass over the prompt; decode =
  a greedy loop that re-runs the whole sequence per token (no KV cache).

Prefill is the time from handing over the prompt to having the first new token; decode speed
counts the tokens after it. Greedy generation runs the full ``new_tokens`` (``min_length`` is set).

Perplexity text is local and fixed: Python's ``pydoc_data.topics`` in sorted-key order, each topic
tokenized without special tokens and concatenated, cut into consecutive ``max_length``-token chunks
(default 128) of which the first ``max_samples`` (default 8) are scored; ``start_chunk`` skips chunks.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import (EvaluationError, int_option, is_causal_lm, load_hf, ort_session, output_index,
                                        text_encoder, text_token_stream, token_dims, token_feeds)
from modelmill.remote_code import is_trusted

DEFAULT_PROMPT_LENGTH = 128
DEFAULT_NEW_TOKENS = 64
DEFAULT_MAX_LENGTH = 128
DEFAULT_MAX_SAMPLES = 8
DEFAULT_SPEED_WARMUP = 1
DEFAULT_SPEED_REPEAT = 3

# ORT execution provider → onnxruntime-genai provider name.
GENAI_PROVIDERS = {"CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "dml", "WebGpuExecutionProvider": "webgpu",
                   "NvTensorRTRTXExecutionProvider": "NvTensorRtRtx", "OpenVINOExecutionProvider": "OpenVINO",
                   "QNNExecutionProvider": "QNN"}


@dataclass
class GenerationSpeed:
    prefill_ms: float
    decode_tokens_per_s: float
    prompt_tokens: int
    new_tokens: int


# ---------------------------------------------------------------------------------------------- speed

def generation_speed(model: ModelRef, metric_config: dict[str, Any] | None = None, *,
                     execution_provider: str = "CPUExecutionProvider") -> GenerationSpeed:
    """Median prefill ms and decode tokens/s over ``repeat_test_num`` (3) runs after ``warmup_num`` (1).

    metric_config: ``prompt_length`` (128), ``new_tokens`` (64), ``warmup_num``, ``repeat_test_num``.
    """
    config = metric_config or {}
    prompt_length = int_option(config, "prompt_length", DEFAULT_PROMPT_LENGTH)
    new_tokens = int_option(config, "new_tokens", DEFAULT_NEW_TOKENS)
    warmup = int_option(config, "warmup_num", DEFAULT_SPEED_WARMUP)
    repeat = max(1, int_option(config, "repeat_test_num", DEFAULT_SPEED_REPEAT))
    if prompt_length < 1 or new_tokens < 2:
        raise EvaluationError("llm speed needs prompt_length >= 1 and new_tokens >= 2",
                              fix="raise metric_config prompt_length / new_tokens")
    if model.is_genai:
        run = _genai_runner(model, prompt_length, new_tokens, execution_provider)
    elif model.kind == "onnx":
        run = _onnx_runner(model, prompt_length, new_tokens, execution_provider)
    elif model.kind == "hf":
        run = _hf_runner(model, prompt_length, new_tokens)
    else:
        raise EvaluationError(f"llm metrics need an ONNX or HF causal LM, not a {model.kind} model",
                              fix="convert the model first")
    for _ in range(warmup):
        run()
    runs = [run() for _ in range(repeat)]
    return GenerationSpeed(prefill_ms=statistics.median(r[0] for r in runs),
                           decode_tokens_per_s=statistics.median(r[1] for r in runs),
                           prompt_tokens=runs[-1][2], new_tokens=runs[-1][3])


def _prompt_ids(encode: Callable[[str], list[int]], length: int, vocab: int | None) -> list[int]:
    ids = text_token_stream(encode, length, vocab_size=vocab)
    if not ids:
        raise EvaluationError("the tokenizer produced no tokens for the local prompt text",
                              fix="check the model folder's tokenizer")
    while len(ids) < length:
        ids = ids + ids
    return ids[:length]


def _context_length(model: ModelRef) -> int | None:
    genai = model.path / "genai_config.json"
    if genai.exists():
        data = json.loads(genai.read_text())
        return data.get("model", {}).get("context_length") or data.get("search", {}).get("max_length")
    return model.hf_config().get("max_position_embeddings")


def _fit(model: ModelRef, prompt_length: int, new_tokens: int) -> tuple[int, int]:
    context = _context_length(model)
    if context and prompt_length + new_tokens > context:
        raise EvaluationError(f"prompt_length {prompt_length} + new_tokens {new_tokens} exceed the model's context "
                              f"length {context}", fix="lower metric_config prompt_length or new_tokens")
    return prompt_length, new_tokens


def genai_model(path: Path, execution_provider: str = "CPUExecutionProvider") -> Any:
    import json

    import onnxruntime_genai as og

    from modelmill.evaluate.runtime import default_intra_op_threads

    threads = default_intra_op_threads()
    if execution_provider == "CPUExecutionProvider" and threads is None:
        return og.Model(str(path))
    provider = GENAI_PROVIDERS.get(execution_provider)
    if provider is None and execution_provider != "CPUExecutionProvider":
        raise EvaluationError(f"onnxruntime-genai cannot run on {execution_provider}",
                              fix=f"use one of: CPUExecutionProvider, {', '.join(GENAI_PROVIDERS)}")
    config = og.Config(str(path))
    if provider is not None:
        config.clear_providers()
        config.append_provider(provider)
    if threads is not None:  # a Ray candidate keeps to its reserved CPUs
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
    return og.Model(config)


def _genai_runner(model: ModelRef, prompt_length: int, new_tokens: int,
                  execution_provider: str) -> Callable[[], tuple[float, float, int, int]]:
    import numpy as np
    import onnxruntime_genai as og

    prompt_length, new_tokens = _fit(model, prompt_length, new_tokens)
    og_model = genai_model(model.path, execution_provider)
    tokenizer = og.Tokenizer(og_model)
    ids = np.asarray(_prompt_ids(lambda text: [int(t) for t in tokenizer.encode(text)], prompt_length,
                                 token_dims(model).get("vocab_size")), dtype=np.int32)
    total = prompt_length + new_tokens

    def run() -> tuple[float, float, int, int]:
        params = og.GeneratorParams(og_model)
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        generator = og.Generator(og_model, params)
        start = time.perf_counter()
        generator.append_tokens(ids)
        generator.generate_next_token()
        generator.get_next_tokens()
        first = time.perf_counter()
        count = 1
        while not generator.is_done():
            generator.generate_next_token()
            generator.get_next_tokens()
            count += 1
        end = time.perf_counter()
        return _speed(start, first, end, count, len(ids))

    return run


def _speed(start: float, first: float, end: float, count: int, prompt: int) -> tuple[float, float, int, int]:
    decode = (count - 1) / (end - first) if count > 1 and end > first else 0.0
    return (first - start) * 1000.0, decode, prompt, count


def _onnx_runner(model: ModelRef, prompt_length: int, new_tokens: int,
                 execution_provider: str) -> Callable[[], tuple[float, float, int, int]]:
    import numpy as np

    prompt_length, new_tokens = _fit(model, prompt_length, new_tokens)
    session = ort_session(model.model_file, execution_provider)
    logits_at = output_index(session, ("logits",))
    prompt = _prompt_ids(text_encoder(model.path), prompt_length, token_dims(model).get("vocab_size"))

    def next_token(ids: list[int]) -> int:
        logits = session.run(None, token_feeds(session, model, ids))[logits_at]
        return int(np.argmax(logits[0, -1]))

    def run() -> tuple[float, float, int, int]:
        ids = list(prompt)
        start = time.perf_counter()
        ids.append(next_token(ids))
        first = time.perf_counter()
        for _ in range(new_tokens - 1):
            ids.append(next_token(ids))
        return _speed(start, first, time.perf_counter(), new_tokens, len(prompt))

    return run


def _hf_runner(model: ModelRef, prompt_length: int, new_tokens: int) -> Callable[[], tuple[float, float, int, int]]:
    import torch
    from transformers.generation.streamers import BaseStreamer

    if not is_causal_lm(model.hf_config()) and model.attributes.get("task") not in ("text-generation", "causal-lm"):
        raise EvaluationError(f"{model.path} is not a causal LM (config.json architectures)",
                              fix="llm metrics need a *ForCausalLM model")
    prompt_length, new_tokens = _fit(model, prompt_length, new_tokens)
    hf_model = load_hf(model.path, class_name="AutoModelForCausalLM", trust_remote_code=is_trusted(model))
    prompt = _prompt_ids(text_encoder(model.path), prompt_length, token_dims(model).get("vocab_size"))
    input_ids = torch.tensor([prompt], dtype=torch.long)
    pad = hf_model.config.pad_token_id if hf_model.config.pad_token_id is not None else hf_model.config.eos_token_id

    class Stamps(BaseStreamer):
        """generate() calls put() with the prompt, then once per new token: a timestamp per call."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value: Any) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    def run() -> tuple[float, float, int, int]:
        stamps = Stamps()
        with torch.inference_mode():
            hf_model.generate(input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                              max_new_tokens=new_tokens, min_new_tokens=new_tokens, streamer=stamps,
                              pad_token_id=pad)
        # generate() hands the prompt to put() once its setup is done, right before the first forward pass
        # (like appending tokens to an og.Generator), then each new token.
        start, tokens = stamps.times[0], stamps.times[1:]
        if not tokens:
            raise EvaluationError("transformers generate produced no tokens", fix="check the model")
        return _speed(start, tokens[0], tokens[-1], len(tokens), len(prompt))

    return run


# ---------------------------------------------------------------------------------------------- perplexity

def perplexity_chunks(encode: Callable[[str], list[int]], max_length: int = DEFAULT_MAX_LENGTH,
                      max_samples: int = DEFAULT_MAX_SAMPLES, start_chunk: int = 0, texts: list[str] | None = None,
                      vocab_size: int | None = None) -> list[list[int]]:
    """The fixed held-out token chunks (see the module docstring)."""
    if max_length < 2 or max_samples < 1:
        raise EvaluationError("perplexity needs max_length >= 2 and max_samples >= 1",
                              fix="raise metric_config max_length / max_samples")
    needed = (start_chunk + max_samples) * max_length
    ids = text_token_stream(encode, needed, texts=texts, vocab_size=vocab_size)
    chunks = [ids[i:i + max_length] for i in range(start_chunk * max_length, len(ids), max_length)]
    chunks = [chunk for chunk in chunks if len(chunk) >= 2][:max_samples]
    if not chunks:
        raise EvaluationError("no text to compute perplexity on", fix="give a data config with more text")
    return chunks


def _nll(logits: Any, ids: list[int]) -> tuple[float, int]:
    """Summed negative log-likelihood of ids[1:] given logits[:-1] (logits: [len, vocab])."""
    import numpy as np

    scores = np.asarray(logits, dtype=np.float64)[:-1]
    targets = np.asarray(ids[1:])
    shifted = scores - scores.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-log_probs[np.arange(len(targets)), targets].sum()), len(targets)


def perplexity(model: ModelRef, metric_config: dict[str, Any] | None = None, *, texts: list[str] | None = None,
               execution_provider: str = "CPUExecutionProvider") -> float:
    """exp(mean token NLL) over the held-out chunks, for ONNX (genai or plain, with logits) or HF causal LMs.

    metric_config: ``max_length`` (128 tokens per chunk), ``max_samples`` (8 chunks), ``start_chunk`` (0).
    """
    config = metric_config or {}
    max_length = int_option(config, "max_length", DEFAULT_MAX_LENGTH)
    max_samples = int_option(config, "max_samples", DEFAULT_MAX_SAMPLES)
    start_chunk = int_option(config, "start_chunk", 0)
    vocab = token_dims(model).get("vocab_size")
    context = _context_length(model)
    if context and max_length > context:
        raise EvaluationError(f"perplexity max_length {max_length} exceeds the context length {context}",
                              fix="lower metric_config max_length")
    if model.kind == "onnx":
        chunks = perplexity_chunks(text_encoder(model.path), max_length, max_samples, start_chunk, texts, vocab)
        score = _onnx_logits(model, execution_provider)
    elif model.kind == "hf":
        chunks = perplexity_chunks(text_encoder(model.path), max_length, max_samples, start_chunk, texts, vocab)
        score = _hf_logits(model)
    else:
        raise EvaluationError(f"perplexity needs an ONNX or HF causal LM, not a {model.kind} model",
                              fix="convert the model first")
    total, count = 0.0, 0
    for chunk in chunks:
        nll, n = _nll(score(chunk), chunk)
        total, count = total + nll, count + n
    return math.exp(total / count)


def _onnx_logits(model: ModelRef, execution_provider: str) -> Callable[[list[int]], Any]:
    session = ort_session(model.model_file, execution_provider)
    outputs = [meta.name for meta in session.get_outputs()]
    if "logits" not in outputs:
        raise EvaluationError(f"{model.model_file} has no logits output (outputs: {', '.join(outputs)})",
                              fix="perplexity needs a causal LM that returns logits")

    def score(ids: list[int]) -> Any:
        logits = session.run(["logits"], token_feeds(session, model, ids))[0][0]
        if logits.shape[0] != len(ids):
            raise EvaluationError(f"{model.model_file} returns logits for {logits.shape[0]} of {len(ids)} positions",
                                  fix="rebuild without prune_lm_head to compute perplexity")
        return logits

    return score


def _hf_logits(model: ModelRef) -> Callable[[list[int]], Any]:
    import torch

    hf_model = load_hf(model.path, class_name="AutoModelForCausalLM", trust_remote_code=is_trusted(model))

    def score(ids: list[int]) -> Any:
        with torch.inference_mode():
            tensor = torch.tensor([ids], dtype=torch.long)
            return hf_model(input_ids=tensor, attention_mask=torch.ones_like(tensor)).logits[0].float().numpy()

    return score
