"""Calibration token batches for PyTorch-level quantizers, from local text only.

Without a data config: the pydoc topics that ship with Python (the same text ``calibration_feeds`` and
``sample:instructions`` use), cut into windows of ``seq_len`` tokens. With a data config: its local files
(``data_files`` / a local ``data_name``), ``sample:instructions``, or Olive's dummy containers (random ids).
Hub datasets are never downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from modelmill.errors import PassError


def batches(folder: Path, data_config: dict[str, Any] | None, max_samples: int, seq_len: int,
            seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Up to ``max_samples`` ``{input_ids, attention_mask}`` batches of one sequence each."""
    from modelmill.engine.data import DUMMY_CONTAINERS, DUMMY_DATASETS, _params

    if data_config:
        load = data_config.get("load_dataset_config") or {}
        load_params, pre = _params(load), _params(data_config.get("pre_process_data_config"))
        seq_len = int(pre.get("max_seq_len") or pre.get("seq_len") or load_params.get("seq_len") or seq_len)
        limit = pre.get("max_samples") or load_params.get("max_samples")
        max_samples = min(max_samples, int(limit)) if limit else max_samples
        if data_config.get("type") in DUMMY_CONTAINERS or (isinstance(load, dict) and load.get("type") in DUMMY_DATASETS):
            return _random(folder, max_samples, seq_len, seed)
        texts = _config_texts(load_params, pre)
    else:
        from modelmill.engine.data import local_texts

        texts = local_texts()
    return _windows(folder, texts, max_samples, seq_len)


def _config_texts(load: dict[str, Any], pre: dict[str, Any]) -> list[str]:
    from modelmill.engine.data import _file_list, _local_data_files, _read_texts

    if load.get("data_name") == "sample:instructions":
        from modelmill.finetune.instructions import build_records

        return ["\n".join(part for part in (record.get("instruction"), record.get("context"), record.get("response"))
                          if part) for record in build_records()]
    local = _local_data_files(load)
    if local is None and load.get("data_files"):
        local = (Path(load.get("data_dir") or "."), _file_list(load.get("data_files")))
    if local is None:
        raise PassError(f"data_config: {load.get('data_name')!r} is not a local file or folder; modelmill never "
                        "downloads datasets", fix="point data_name (or data_files) at a local .txt/.jsonl/.json file, "
                        "or leave data_config out to calibrate on the text that ships with Python")
    field = load.get("text_cols") or load.get("text_field") or pre.get("text_cols") or pre.get("text_field")
    if isinstance(field, list):
        field = field[0] if field else None
    directory, files = local
    return [text for name in files for text in _read_texts(directory / name, field)]


def _tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _windows(folder: Path, texts: list[str], max_samples: int, seq_len: int) -> list[dict[str, torch.Tensor]]:
    """Consecutive windows of ``seq_len`` tokens over the texts joined by blank lines."""
    tokenizer = _tokenizer(folder)
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"])
        if len(ids) >= max_samples * seq_len:
            break
    windows = [ids[start:start + seq_len] for start in range(0, len(ids) - seq_len + 1, seq_len)][:max_samples]
    if not windows and ids:
        windows = [ids]
    if not windows:
        raise PassError("the calibration text is empty", fix="give a data_config with some text in it")
    return [{"input_ids": torch.tensor([w]), "attention_mask": torch.ones(1, len(w), dtype=torch.long)}
            for w in windows]


def _random(folder: Path, max_samples: int, seq_len: int, seed: int) -> list[dict[str, torch.Tensor]]:
    import json

    vocab = int(json.loads((folder / "config.json").read_text()).get("vocab_size") or 32000)
    generator = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, vocab, (1, seq_len), generator=generator),
             "attention_mask": torch.ones(1, seq_len, dtype=torch.long)} for _ in range(max_samples)]
