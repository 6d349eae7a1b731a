"""LLMs exported to OpenVINO IR (OpenVINOOptimumConversion) in openvino-genai's LLMPipeline, for chat/generate.

A folder qualifies when it holds the ``openvino_tokenizer``/``openvino_detokenizer`` IRs and one LLM IR: optimum-intel
writes ``openvino_model.xml``; OpenVINOIoUpdate renames it ``openvino_model_dy``/``_st`` (as Olive does), and
OpenVINOEncapsulation keeps that name beside its EPContext model. openvino-genai only finds ``openvino_model.xml`` in
a folder, so a renamed IR is read here and handed to the pipeline with the folder's tokenizer.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from modelmill.errors import ModelMillError

TOKENIZER_IRS = ("openvino_tokenizer", "openvino_detokenizer")
DEFAULT_IR = "openvino_model.xml"


def llm_ir(folder: Path) -> Path | None:
    """The LLM IR of an openvino-genai folder (openvino_model.xml, else the one other IR with its .bin), or None."""
    folder = Path(folder)
    if not folder.is_dir() or not all((folder / f"{name}.xml").exists() for name in TOKENIZER_IRS):
        return None
    if (folder / DEFAULT_IR).exists():
        return folder / DEFAULT_IR
    others = [p for p in sorted(folder.glob("*.xml")) if p.stem not in TOKENIZER_IRS and p.with_suffix(".bin").exists()]
    return others[0] if len(others) == 1 else None


# Architectures that generate text: an encoder exported by optimum-intel also gets tokenizer IRs, but no chat.
GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


def is_openvino_llm(folder: Path) -> bool:
    """An openvino-genai LLM folder (``llm_ir``) whose config.json, where there is one, names a generative
    architecture."""
    if llm_ir(folder) is None:
        return False
    try:
        architectures = json.loads((Path(folder) / "config.json").read_text()).get("architectures") or []
    except FileNotFoundError:
        return True
    except (OSError, ValueError, AttributeError):
        return False
    return any(str(name).endswith(GENERATIVE_SUFFIXES) for name in architectures)


def pipeline(folder: Path, device: str = "CPU", num_threads: int | None = None) -> Any:
    """openvino_genai.LLMPipeline on ``folder``'s LLM IR and tokenizer IRs."""
    folder = Path(folder)
    ir = llm_ir(folder)
    if ir is None:
        raise ModelMillError(f"{folder} is not an OpenVINO LLM folder (it needs openvino_tokenizer.xml, "
                             "openvino_detokenizer.xml and one model IR)",
                             fix="pass the output of OpenVINOOptimumConversion (or auto-opt --provider "
                                 "OpenVINOExecutionProvider)")
    if importlib.util.find_spec("openvino_genai") is None:
        raise ModelMillError(f"{folder} is an OpenVINO LLM, and openvino-genai is not installed here",
                             fix="pip install 'modelmill[openvino]'")
    import openvino_genai

    config: dict[str, Any] = {"INFERENCE_NUM_THREADS": int(num_threads)} if num_threads else {}
    if ir.name == DEFAULT_IR:
        return openvino_genai.LLMPipeline(str(folder), device, **config)
    import numpy as np
    import openvino as ov

    weights = ov.Tensor(np.fromfile(ir.with_suffix(".bin"), dtype=np.uint8))
    generation_file = folder / "generation_config.json"
    generation = openvino_genai.GenerationConfig(str(generation_file)) if generation_file.exists() else None
    return openvino_genai.LLMPipeline(ir.read_text(encoding="utf-8"), weights, openvino_genai.Tokenizer(str(folder)),
                                      device, generation, **config)


def generate(folder: Path, prompt: str, max_new_tokens: int = 64, *, chat_template: bool = False,
             pipe: Any = None, streamer: Any = None) -> tuple[str, dict[str, float]]:
    """Greedy generation of up to ``max_new_tokens`` after ``prompt``; the text and openvino-genai's timings
    (prefill = time to first token, decode tokens/s)."""
    pipe = pipe or pipeline(folder)
    config = _greedy(max_new_tokens, chat_template)
    start = time.perf_counter()
    result = pipe.generate([prompt], config, streamer) if streamer else pipe.generate([prompt], config)
    elapsed = time.perf_counter() - start
    metrics = result.perf_metrics
    new_tokens = int(metrics.get_num_generated_tokens())
    stats = {"prompt_tokens": float(metrics.get_num_input_tokens()), "new_tokens": float(new_tokens),
             "ttft_s": metrics.get_ttft().mean / 1000.0, "decode_tok_s": metrics.get_throughput().mean,
             "total_s": elapsed}
    return result.texts[0], stats


def _greedy(max_new_tokens: int, chat_template: bool = False) -> Any:
    import openvino_genai

    config = openvino_genai.GenerationConfig()
    config.max_new_tokens = max_new_tokens
    config.do_sample = False
    config.apply_chat_template = chat_template
    return config


class OpenVINOChatModel:
    """An OpenVINO LLM folder behind the interface of genai.ChatModel (what `modelmill chat`/`generate` use)."""

    adapter_file = None  # LoRA adapters are ORT GenAI's .onnx_adapter files; an OpenVINO export has merged weights

    def __init__(self, folder: str | Path, num_threads: int | None = None) -> None:
        self.folder = Path(folder)
        self.pipe = pipeline(self.folder, num_threads=num_threads)
        self.tokenizer = self.pipe.get_tokenizer()

    def prompt_for(self, message: str, system: str | None = None) -> str:
        """Apply the model's chat template to one user message (plain text when it has none)."""
        if not self.tokenizer.chat_template:
            return message
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    def stream(self, prompt: str, max_new_tokens: int = 128, stats: Any = None) -> Iterator[str]:
        """Yield decoded text pieces of greedy generation (openvino-genai runs in a worker thread; its streamer
        callback hands the pieces over)."""
        import openvino_genai

        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        running = getattr(openvino_genai, "StreamingStatus", None)
        keep_going = running.RUNNING if running is not None else False

        def on_piece(text: str) -> Any:
            pieces.put(("text", text))
            return keep_going

        def work() -> None:
            try:
                # a list in: DecodedResults out, with perf metrics (a plain string gives back only the text)
                result = self.pipe.generate([prompt], _greedy(max_new_tokens), on_piece)
                pieces.put(("done", result.perf_metrics))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, raised there
                pieces.put(("error", exc))

        thread = threading.Thread(target=work, name="openvino-genai", daemon=True)
        thread.start()
        while True:
            kind, value = pieces.get()
            if kind == "text":
                yield value
            elif kind == "error":
                thread.join()
                raise ModelMillError(f"openvino-genai failed on {self.folder}: {type(value).__name__}: {value}",
                                     fix="check that the folder is a complete OpenVINOOptimumConversion output")
            else:
                thread.join()
                if stats is not None:
                    _fill_stats(stats, value)
                return

    def chat(self, message: str, max_new_tokens: int = 128, on_text: Callable[[str], None] | None = None,
             stats: Any = None) -> str:
        out = []
        for piece in self.stream(self.prompt_for(message), max_new_tokens, stats):
            out.append(piece)
            if on_text is not None:
                on_text(piece)
        return "".join(out)


def _fill_stats(stats: Any, metrics: Any) -> None:
    """openvino-genai's perf metrics into genai.GenerationStats (prefill = time to first token)."""
    stats.prompt_tokens = int(metrics.get_num_input_tokens())
    stats.new_tokens = int(metrics.get_num_generated_tokens())
    stats.prefill_ms = float(metrics.get_ttft().mean)
    stats.decode_s = max(stats.new_tokens - 1, 0) * float(metrics.get_tpot().mean) / 1000.0
