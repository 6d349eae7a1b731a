"""What the input model is (from its config.json), and which ORT optimizer model_type fits it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from modelmill.config.view import ConfigView

# Hugging Face model_type → ONNX Runtime transformers-optimizer model_type.
ORT_MODEL_TYPES: dict[str, str] = {
    **dict.fromkeys(("bert", "roberta", "distilbert", "xlm-roberta", "electra", "albert", "camembert", "mpnet"),
                    "bert"),
    "bart": "bart", "mbart": "bart", "gpt2": "gpt2", "gpt_neox": "gpt_neox", "phi": "phi", "qwen3": "qwen3",
    "t5": "t5", "mt5": "t5", "vit": "vit", "deit": "vit", "swin": "swin", "clip": "clip", "sam2": "sam2",
}
# Decoder LLMs the ORT transformers optimizer has no model_type for (ModelBuilder handles them).
LLM_TYPES = frozenset({"llama", "qwen2", "qwen2_moe", "mistral", "mixtral", "phi3", "phimoe", "gemma", "gemma2",
                       "gemma3", "gemma3_text", "olmo", "olmo2", "granite", "nemotron", "chatglm", "exaone",
                       "smollm3", "ernie4_5"})

# Architectures of the bundled samples (they may not be fetched yet, so no config.json to read).
SAMPLE_MODELS = {"smollm2": ("llama", "LlamaForCausalLM"), "minilm": ("bert", "BertModel")}


@dataclass(frozen=True)
class ModelInfo:
    model_type: str
    architecture: str | None


def input_model_info(view: ConfigView) -> ModelInfo | None:
    """model_type and architecture of a local (or sample) HfModel input, else None."""
    model = view.get(("input_model",))
    if not isinstance(model, dict) or model.get("type") != "HfModel":
        return None
    path = model.get("model_path")
    if not isinstance(path, str):
        return None
    if path.startswith("sample:"):
        known = SAMPLE_MODELS.get(path.removeprefix("sample:").lower())
        return ModelInfo(*known) if known else None
    folder = view.resolve_path(path)
    config_file = folder / "config.json" if folder is not None and folder.is_dir() else None
    if config_file is None or not config_file.is_file():
        return None
    try:
        config: Any = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        return None
    architectures = config.get("architectures")
    first = architectures[0] if isinstance(architectures, list) and architectures else None
    return ModelInfo(config["model_type"], first if isinstance(first, str) else None)


def expected_ort_model_type(info: ModelInfo) -> tuple[bool, str | None]:
    """(known, ORT model_type). known=False: we cannot tell, so do not warn."""
    if info.model_type in ORT_MODEL_TYPES:
        return True, ORT_MODEL_TYPES[info.model_type]
    return info.model_type in LLM_TYPES, None
