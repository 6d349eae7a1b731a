"""What to do about a Hugging Face hub id in model_path, for the kind of model it names.

ModelMill reads models from local folders only; the fix is to download the model once and give its folder.
A bundled sample is offered only when one of the same kind exists (an LLM for text generation, a sentence
encoder for feature extraction), never a chat model for BERT, CLIP or Stable Diffusion.
"""

from __future__ import annotations

from typing import Any

from modelmill.samples import SAMPLE_PREFIX, SAMPLES

# Words in a hub id that tell the kind of model when the config gives no task (checked in this order).
_KIND_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("stable-diffusion", "sdxl", "sd-turbo", "flux", "diffusion"), "a diffusion pipeline"),
    (("clip", "siglip"), "an image-text (CLIP) model"),
    (("whisper", "wav2vec", "hubert"), "a speech model"),
    (("sentence-transformers", "minilm", "bge-", "gte-", "e5-", "mpnet"), "a sentence encoder"),
    (("bert", "roberta", "deberta", "electra"), "a BERT-style encoder"),
    (("vit", "resnet", "mobilenet", "yolo", "detr", "convnext", "timm/", "efficientnet"), "a vision model"),
    (("llama", "phi", "qwen", "mistral", "gemma", "gpt", "opt-", "falcon", "smollm", "deepseek", "tinyllama"),
     "a text-generation model"),
)
_TASK_KIND = {"text-generation": "a text-generation model", "feature-extraction": "a sentence encoder",
              "sentence-similarity": "a sentence encoder"}
# The sample tasks that fit each kind.
_KIND_TASKS = {"a text-generation model": ("text-generation",), "a sentence encoder": ("feature-extraction",)}


def model_kind(model: dict[str, Any], hub_id: str) -> str | None:
    """The kind of model a hub id names, from the config's task, else from the id; None when unknown."""
    task = model.get("task")
    if isinstance(task, str):
        base = task.removesuffix("-with-past")
        if base in _TASK_KIND:
            return _TASK_KIND[base]
    lowered = hub_id.lower()
    for words, kind in _KIND_WORDS:
        if any(word in lowered for word in words):
            return kind
    return None


def matching_sample(kind: str | None) -> str | None:
    tasks = _KIND_TASKS.get(kind or "", ())
    return next((SAMPLE_PREFIX + s.name for s in SAMPLES.values() if s.task in tasks), None)


def hub_id_hint(model: dict[str, Any], hub_id: str) -> tuple[str, str, str | None]:
    """(message, hint, sample to put in place or None) for a hub id in ``model``'s model_path."""
    kind = model_kind(model, hub_id)
    folder = f"models/{hub_id.rsplit('/', 1)[-1]}"
    message = (f"'{hub_id}' looks like a Hugging Face hub id" + (f" ({kind})" if kind else "")
               + " and is not found locally: ModelMill reads models from local folders only")
    hint = (f"download it once (`huggingface-cli download {hub_id} --local-dir {folder}`) and set model_path "
            f"to \"{folder}\"")
    sample = matching_sample(kind)
    if sample is not None:
        hint += f"; or try {sample}, a small sample of the same kind"
    return message, hint, sample
