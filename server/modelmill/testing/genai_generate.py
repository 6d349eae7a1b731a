"""Greedy generation with onnxruntime-genai, for tests that check an output folder really generates."""

from __future__ import annotations

from pathlib import Path


def greedy_tokens(folder: Path, prompt_ids: list[int], max_length: int) -> list[int]:
    """The tokens onnxruntime-genai generates after ``prompt_ids`` (greedy) until ``max_length`` in all."""
    import numpy as np
    import onnxruntime_genai as og

    model = og.Model(str(folder))
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False)
    generator = og.Generator(model, params)
    generator.append_tokens(np.array(prompt_ids, dtype=np.int32))
    tokens: list[int] = []
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    return tokens
