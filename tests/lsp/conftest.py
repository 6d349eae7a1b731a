"""Fixtures for the language-server tests (helpers live in lsp_helpers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace folder with a fake HF model folder ("model") that the checks can read."""
    root = tmp_path_factory.mktemp("lsp_workspace")
    model = root / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                                   "num_hidden_layers": 2, "hidden_size": 64}))
    return root
