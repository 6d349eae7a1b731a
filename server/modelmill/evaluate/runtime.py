"""Shared plumbing for the metric modules: ORT sessions and feeds, HF loading, tokenizers, local text, timing.

Heavy libraries (numpy, onnxruntime, torch, transformers, tokenizers) are imported inside functions.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelmill.engine.data import InputSpec, dummy_feeds, feeds_from_tokens, local_texts, model_dims
from modelmill.engine.model import ModelRef
from modelmill.errors import ModelMillError
from modelmill.remote_code import HOW_TO_TRUST, remote_code_modules

if TYPE_CHECKING:
    import numpy as np

# Token ids stay below this when no config.json/genai_config.json gives the vocabulary size.
FALLBACK_VOCAB = 100
DEFAULT_BATCH_SIZE = 1
DEFAULT_SEQUENCE_LENGTH = 128

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(bfloat16)": "float32", "tensor(int64)": "int64", "tensor(int32)": "int32",
              "tensor(int16)": "int16", "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


class EvaluationError(ModelMillError):
    """A metric could not be measured on a model."""


# ---------------------------------------------------------------------------------------------- ONNX Runtime

def default_intra_op_threads() -> int | None:
    """The thread cap of this process's sessions when the metric sets none: a candidate on a Ray worker
    gets its reserved CPUs (``MODELMILL_INTRA_OP_THREADS``, set by engine.distributed); None = ORT's default."""
    import os

    value = os.environ.get("MODELMILL_INTRA_OP_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def ort_session(model_file: Path, execution_provider: str = "CPUExecutionProvider",
                intra_op_num_threads: int | None = None) -> Any:
    """An InferenceSession on ``execution_provider`` (CPU as fallback), with optional intra-op thread count."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    intra_op_num_threads = intra_op_num_threads or default_intra_op_threads()
    if intra_op_num_threads:
        options.intra_op_num_threads = int(intra_op_num_threads)
    providers = [execution_provider] + (["CPUExecutionProvider"] if execution_provider != "CPUExecutionProvider"
                                         else [])
    available = set(ort.get_available_providers())
    if execution_provider not in available:
        raise EvaluationError(f"onnxruntime has no {execution_provider} here "
                              f"(available: {', '.join(sorted(available))})",
                              fix="evaluate on a machine with that execution provider, or use CPUExecutionProvider")
    try:
        return ort.InferenceSession(str(model_file), options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises several types
        from modelmill.passes.onnx_io import onnx_file_problem

        problem = onnx_file_problem(Path(model_file))
        if problem is not None:  # the file itself is broken: say so, not "something is missing"
            raise EvaluationError(f"{model_file} {problem}: it is not a whole ONNX model",
                                  fix="download or export the model again") from exc
        raise EvaluationError(f"onnxruntime could not load {model_file}: {exc}",
                              fix="check that the model folder is complete (ONNX file and its external data)") from exc


def session_specs(session: Any) -> list[InputSpec]:
    """The session's inputs as InputSpecs (dtype from the ORT type, dims as ints or names)."""
    specs = []
    for meta in session.get_inputs():
        dtype = _ORT_TYPES.get(meta.type)
        if dtype is None:
            raise EvaluationError(f"input {meta.name} has type {meta.type}, which modelmill cannot generate",
                                  fix="evaluate this model with a custom metric (user_script)")
        shape = tuple(dim if isinstance(dim, int) and dim > 0 else (dim if isinstance(dim, str) else None)
                      for dim in (meta.shape or []))
        specs.append(InputSpec(meta.name, dtype, shape))
    return specs


def token_dims(model: ModelRef) -> dict[str, int]:
    """Dims from the model's configs, with the vocabulary falling back to FALLBACK_VOCAB."""
    dims = model_dims(model)
    dims.setdefault("vocab_size", FALLBACK_VOCAB)
    return dims


def random_feeds(session: Any, model: ModelRef, batch_size: int = DEFAULT_BATCH_SIZE,
                 sequence_length: int = DEFAULT_SEQUENCE_LENGTH, seed: int = 0) -> dict[str, "np.ndarray"]:
    """Feeds for every session input: ids within the vocabulary, masks of ones, empty past KV caches."""
    return dummy_feeds(session_specs(session), batch_size, sequence_length, 0, token_dims(model), seed)


def token_feeds(session: Any, model: ModelRef, token_ids: list[int]) -> dict[str, "np.ndarray"]:
    """Feeds for one sequence of ids (batch 1, past length 0)."""
    return feeds_from_tokens(session_specs(session), token_ids, token_dims(model))


def output_index(session: Any, preferred: tuple[str, ...]) -> int:
    names = [meta.name for meta in session.get_outputs()]
    for name in preferred:
        if name in names:
            return names.index(name)
    return 0


# ---------------------------------------------------------------------------------------------- Hugging Face

def hf_class_name(config: dict[str, Any], task: str | None = None) -> str:
    """The transformers class for an HF folder: its architecture when transformers knows it, else an Auto class."""
    import transformers

    if task in ("text-generation", "text-generation-with-past", "causal-lm"):
        return "AutoModelForCausalLM"
    if task in ("text-classification", "sequence-classification"):
        return "AutoModelForSequenceClassification"
    if task in ("feature-extraction", "sentence-similarity"):
        return "AutoModel"
    for arch in config.get("architectures") or []:
        if hasattr(transformers, str(arch)):
            return str(arch)
    return "AutoModel"


def load_hf(path: Path, class_name: str | None = None, task: str | None = None,
            trust_remote_code: bool = False) -> Any:
    """An HF model in eval mode, loaded from a local folder only (its own code only with the user's consent)."""
    import transformers

    config = json.loads((path / "config.json").read_text()) if (path / "config.json").exists() else {}
    if not config:
        raise EvaluationError(f"{path} has no config.json", fix="point the model at a Hugging Face model folder")
    modules = remote_code_modules(path)
    if modules and not trust_remote_code:  # refused here, with the way to allow it, before transformers looks
        raise EvaluationError(f"{path / 'config.json'} asks to run the model folder's own Python code (auto_map: "
                              f"{', '.join(modules)}), and remote code is not allowed for this run",
                              fix=f"evaluate it {HOW_TO_TRUST}")
    name = class_name or hf_class_name(config, task)
    try:
        model = getattr(transformers, name).from_pretrained(str(path), local_files_only=True,
                                                          trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise EvaluationError(f"transformers could not load {path} as {name}: {exc}",
                              fix="check that the folder holds a complete Hugging Face model") from exc
    return model.eval()


def is_causal_lm(config: dict[str, Any]) -> bool:
    return any(str(arch).endswith(("ForCausalLM", "LMHeadModel")) for arch in config.get("architectures") or [])


def forward_arg_names(hf_model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(hf_model.forward).parameters)


# ---------------------------------------------------------------------------------------------- tokenizers & text

def load_tokenizer(*folders: Path | None) -> Any:
    """A ``tokenizers.Tokenizer`` from the first folder holding tokenizer.json, else None."""
    for folder in folders:
        if folder is None:
            continue
        folder = folder if folder.is_dir() else folder.parent
        path = folder / "tokenizer.json"
        if path.exists():
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(path))
            # Some tokenizer.json files pad every row to a fixed length; callers pad (and mask) themselves.
            tokenizer.no_padding()
            return tokenizer
    return None


def text_encoder(*folders: Path | None) -> Callable[[str], list[int]]:
    """text → token ids (no special tokens) with the first folder's tokenizer.json, or transformers' AutoTokenizer."""
    tokenizer = load_tokenizer(*folders)
    if tokenizer is not None:
        return lambda text: list(tokenizer.encode(text, add_special_tokens=False).ids)
    for folder in folders:
        if folder is not None and (folder / "tokenizer_config.json").exists():
            from transformers import AutoTokenizer

            hf_tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            return lambda text: list(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
    raise EvaluationError(f"no tokenizer found in {', '.join(str(f) for f in folders if f is not None)}",
                          fix="keep tokenizer.json (or the HF tokenizer files) in the model folder")


def text_token_stream(encode: Callable[[str], list[int]], min_tokens: int, texts: list[str] | None = None,
                      vocab_size: int | None = None) -> list[int]:
    """Token ids of the texts (default: pydoc topics in sorted-key order), concatenated until ``min_tokens``."""
    ids: list[int] = []
    for text in texts if texts is not None else local_texts():
        ids.extend(encode(text))
        if len(ids) >= min_tokens:
            break
    if vocab_size:
        ids = [min(token, vocab_size - 1) for token in ids]
    return ids


def local_sentences(count: int, min_words: int = 5) -> list[str]:
    """``count`` sentences of local English text: the first paragraph of each pydoc topic (sorted keys)
    that has at least ``min_words`` words, whitespace collapsed, at most 60 words."""
    sentences = []
    for text in local_texts():
        for paragraph in re.split(r"\n\s*\n", text):
            words = paragraph.split()
            if len(words) >= min_words and not paragraph.startswith((" ", "\t")):
                sentences.append(" ".join(words[:60]))
                break
        if len(sentences) >= count:
            break
    return sentences


# ---------------------------------------------------------------------------------------------- timing

@dataclass
class Timings:
    """Per-run latencies of repeated inferences with ``batch_size`` samples each."""

    latencies_ms: list[float]
    batch_size: int = 1

    def latency(self, sub_type: str) -> float:
        return stat(self.latencies_ms, sub_type)

    def throughput(self, sub_type: str) -> float:
        """Samples/s. avg: batch_size * 1000 / mean latency (all samples over all time); the others are stats
        of the per-run throughputs batch_size * 1000 / latency_ms (max is the fastest run, min the slowest)."""
        if sub_type == "avg":
            return self.batch_size * 1000.0 / max(self.latency("avg"), 1e-9)
        return stat([self.batch_size * 1000.0 / max(ms, 1e-9) for ms in self.latencies_ms], sub_type)


STAT_PERCENTILES = {"p50": 50.0, "p75": 75.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def stat(samples: list[float], sub_type: str) -> float:
    import numpy as np

    if not samples:
        raise EvaluationError("no timed runs", fix="set repeat_test_num to 1 or more")
    data = np.asarray(samples, dtype=np.float64)
    if sub_type == "avg":
        return float(data.mean())
    if sub_type == "min":
        return float(data.min())
    if sub_type == "max":
        return float(data.max())
    if sub_type in STAT_PERCENTILES:
        return float(np.percentile(data, STAT_PERCENTILES[sub_type]))
    raise EvaluationError(f"unknown latency sub type {sub_type!r}",
                          fix="use one of avg, min, max, p50, p75, p90, p95, p99, p999")


def time_runs(run: Callable[[], Any], warmup_num: int, repeat_test_num: int, sleep_num: float = 0) -> list[float]:
    """Call ``run`` warmup_num times untimed, then repeat_test_num times timed; ms per call."""
    for _ in range(max(0, int(warmup_num))):
        run()
    latencies = []
    for _ in range(max(1, int(repeat_test_num))):
        start = time.perf_counter()
        run()
        latencies.append((time.perf_counter() - start) * 1000.0)
        if sleep_num:
            time.sleep(float(sleep_num))
    return latencies


def int_option(config: dict[str, Any], key: str, default: int) -> int:
    value = config.get(key)
    return int(value) if value is not None else default
