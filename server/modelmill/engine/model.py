"""Handles on models as they move between passes."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

ModelKind = Literal["hf", "pytorch", "onnx", "openvino", "diffusers", "composite"]


@dataclass(frozen=True)
class ModelRef:
    """A model on disk.

    - ``hf``: a Hugging Face folder (config.json + weights + tokenizer).
    - ``pytorch``: a ``torch.save``d module file, or a folder with a loader script.
    - ``onnx``: a folder holding ``onnx_file`` and its companions (external data,
      genai_config.json, tokenizer files), which passes carry along to their output.
    - ``openvino``: a folder holding one OpenVINO IR (``onnx_file`` names its ``.xml``; the ``.bin`` beside it)
      and its companions (config.json, tokenizer files, openvino_tokenizer/openvino_detokenizer IRs).
    - ``diffusers``: a diffusers pipeline folder (model_index.json, unet/ or transformer/, vae/, text encoders),
      or, with ``base_model_path`` and ``adapter_path``, a LoRA adapter for the pipeline at ``base_model_path``.
    - ``composite``: a folder holding several ONNX models that run in cascade (SplitModel's ``split_0.onnx``,
      ``split_1.onnx``, ... each with its own external data), listed in order by ``attributes["components"]``
      (``[{"name": ..., "onnx_file": ...}]``); ``onnx_file`` names the first.
    """

    kind: ModelKind
    path: Path
    onnx_file: str = "model.onnx"
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def model_file(self) -> Path:
        """The ONNX file itself (kind ``onnx``), or the IR's .xml (kind ``openvino``)."""
        return self.path / self.onnx_file

    @property
    def is_genai(self) -> bool:
        """True when the folder is an onnxruntime-genai model (has genai_config.json)."""
        return self.kind == "onnx" and (self.path / "genai_config.json").exists()

    @property
    def components(self) -> list["ModelRef"]:
        """The ONNX models of a ``composite`` model, in cascade order (each an ``onnx`` ref in the same folder)."""
        if self.kind != "composite":
            return []
        extra = {key: value for key, value in self.attributes.items() if key != "components"}
        # a component's file may lie in a subfolder of its own (a pass run per component writes one each)
        return [ModelRef(kind="onnx", path=self.path / Path(entry["onnx_file"]).parent,
                         onnx_file=Path(entry["onnx_file"]).name,
                         attributes={**extra, "component_name": entry["name"]})
                for entry in self.attributes.get("components") or []]

    def with_attributes(self, **extra: Any) -> "ModelRef":
        return replace(self, attributes={**self.attributes, **extra})

    @property
    def base_model_path(self) -> Path:
        """The Hugging Face folder with the model's weights: the base model when ``path`` holds an adapter."""
        base = self.attributes.get("base_model_path")
        return Path(base) if base else self.path

    @property
    def adapter_dir(self) -> Path | None:
        """The LoRA adapter folder applied on top of ``base_model_path``, if any."""
        adapter = self.attributes.get("adapter_path")
        return (self.path / adapter).resolve() if adapter and self.attributes.get("base_model_path") else None

    def hf_config(self) -> dict[str, Any]:
        """config.json of an HF folder (or the one copied beside an ONNX model), else {}."""
        for candidate in (self.base_model_path / "config.json",):
            if candidate.exists():
                return json.loads(candidate.read_text())
        return {}

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "onnx_file": self.onnx_file, "attributes": self.attributes}


def several_onnx_files(folder: Path, limit: int = 1000) -> str | None:
    """Why ``folder`` does not name one ONNX model: several ``.onnx`` files and no ``model.onnx`` (SplitModel's
    ``split_N.onnx``, an encoder beside a decoder), where taking the first by name would take part of the model or
    another one; None otherwise. Reads at most ``limit`` names (validation runs this as the config is typed)."""
    if (folder / "model.onnx").exists():
        return None
    names = sorted(itertools.islice((path.name for path in folder.glob("*.onnx")), limit))
    if len(names) < 2:
        return None
    count = f"{len(names)}{'+' if len(names) == limit else ''}"
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    return f"{folder} holds {count} ONNX files ({shown}) and no model.onnx, so which one is the model is not clear"
