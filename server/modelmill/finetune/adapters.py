"""LoRA adapters as model inputs: find the base model an adapter belongs to.

A model may be given as a base folder plus ``adapter_path`` (Olive's HfModel field), as a bare adapter
folder, or as a ``finetune`` output without a merged model (its ``adapter/`` subfolder). Each becomes a
ModelRef whose ``path`` holds the adapter (so the input's content hash covers the adapter's weights) and
whose attributes name the base folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelmill.errors import ConfigError

ADAPTER_CONFIG = "adapter_config.json"


def is_adapter(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).exists()


def find_adapter(folder: Path) -> Path | None:
    """The adapter folder inside ``folder`` (itself or ``adapter/``) when it has no model of its own."""
    if not folder.is_dir() or (folder / "config.json").exists():
        return None
    return next((candidate for candidate in (folder, folder / "adapter") if is_adapter(candidate)), None)


def adapter_base(adapter: Path, where: str = "input_model.model_path") -> Path:
    """The local base model folder an adapter was trained on (its adapter_config's base_model_name_or_path)."""
    config = json.loads((adapter / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path") or ""
    path = Path(base).expanduser()
    if not base or not (path / "config.json").exists():
        raise ConfigError(f"the adapter in {adapter} was trained on '{base or '(not recorded)'}', which is not a "
                          "local Hugging Face folder", fix="pass the base model folder as model_path and the adapter "
                          "as adapter_path (modelmill auto-opt -m BASE --adapter_path ADAPTER)", where=where)
    return path.resolve()
