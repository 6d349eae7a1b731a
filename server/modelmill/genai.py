"""Text generation with an ORT GenAI output folder (onnxruntime-genai 0.18 API)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from modelmill.errors import ModelMillError

ADAPTER_NAME = "adapter"


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    new_tokens: int = 0
    prefill_ms: float = 0.0
    decode_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        # The first new token comes out of prefill; decode speed counts the ones after it.
        return (self.new_tokens - 1) / self.decode_s if self.new_tokens > 1 and self.decode_s > 0 else 0.0


class ChatModel:
    """An ORT GenAI model folder with its tokenizer and chat template."""

    def __init__(self, folder: str | Path, adapter: str | Path | bool | None = None) -> None:
        """``adapter``: an .onnx_adapter file to activate; None = the folder's adapter file if it has one;
        False = none (the base model)."""
        folder = Path(folder)
        if not (folder / "genai_config.json").exists():
            raise ModelMillError(f"{folder} is not an ORT GenAI model folder (no genai_config.json)",
                                 fix="pass the output folder of `modelmill auto-opt` (or a ModelBuilder pass)")
        import onnxruntime_genai as og

        self.og = og
        self.folder = folder
        self.model = og.Model(str(folder))
        self.tokenizer = og.Tokenizer(self.model)
        self.template = _read_chat_template(folder)
        self.adapter_file = _adapter_file(folder, adapter)
        self.adapters = None
        if self.adapter_file is not None:
            self.adapters = og.Adapters(self.model)
            self.adapters.load(str(self.adapter_file), ADAPTER_NAME)

    def prompt_for(self, message: str, system: str | None = None) -> str:
        """Apply the model's chat template to one user message (plain text when it has none)."""
        if not self.template:
            return message
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": message}]
        return self.tokenizer.apply_chat_template(json.dumps(messages), template_str=self.template,
                                                  add_generation_prompt=True)

    def stream(self, prompt: str, max_new_tokens: int = 128, stats: GenerationStats | None = None,
               **search: float | int | bool) -> Iterator[str]:
        """Yield decoded text pieces of greedy (or sampled, via ``search``) generation."""
        og = self.og
        stats = stats if stats is not None else GenerationStats()
        tokens = self.tokenizer.encode(prompt)
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(tokens) + max_new_tokens, **search)
        generator = og.Generator(self.model, params)
        if self.adapters is not None:
            generator.set_active_adapter(self.adapters, ADAPTER_NAME)
        decoder = self.tokenizer.create_stream()
        stats.prompt_tokens = len(tokens)
        start = time.perf_counter()
        generator.append_tokens(tokens)
        decode_start = None
        while not generator.is_done():
            generator.generate_next_token()
            if decode_start is None:
                decode_start = time.perf_counter()
                stats.prefill_ms = (decode_start - start) * 1000
            stats.new_tokens += 1
            yield decoder.decode(generator.get_next_tokens()[0])
        if decode_start is not None:
            stats.decode_s = time.perf_counter() - decode_start

    def chat(self, message: str, max_new_tokens: int = 128, on_text: Callable[[str], None] | None = None,
             stats: GenerationStats | None = None) -> str:
        pieces = []
        for piece in self.stream(self.prompt_for(message), max_new_tokens, stats):
            pieces.append(piece)
            if on_text:
                on_text(piece)
        return "".join(pieces)


def _adapter_file(folder: Path, adapter: str | Path | bool | None) -> Path | None:
    if adapter is False:
        return None
    if adapter is None or adapter is True:
        found = sorted(folder.glob("*.onnx_adapter"))
        return found[0] if found else None
    path = Path(adapter)
    if not path.is_file():
        raise ModelMillError(f"adapter file {path} does not exist",
                             fix="pass an .onnx_adapter file (auto-opt --adapter_format onnx_adapter writes one)")
    return path


def _read_chat_template(folder: Path) -> str | None:
    jinja = folder / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    config = folder / "tokenizer_config.json"
    if config.exists():
        template = json.loads(config.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    return None
