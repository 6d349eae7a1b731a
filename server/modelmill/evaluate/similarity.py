"""Encoder fidelity and speed: cosine similarity of embeddings against the PyTorch reference, and throughput.

Embeddings are the attention-masked mean of ``last_hidden_state``. The reference is an HF folder: the
model's own ``source_hf_path`` attribute when a pass recorded it, else the ``reference`` argument
(the workflow's input model). Sentences are local: the first paragraph of each pydoc topic (sorted keys).
Both models get the same token ids (the reference folder's tokenizer.json, else the model's).

metric_config: ``num_samples`` (32 sentences), ``max_length`` (64 tokens), ``batch_size`` (8 for cosine);
for ``samples_per_s``: ``batch_size`` (1), ``sequence_length`` (128), ``intra_op_num_threads``,
``warmup_num``, ``repeat_test_num`` as for latency.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelmill.engine.model import ModelRef
from modelmill.evaluate.openvino_runtime import model_session
from modelmill.evaluate.runtime import (
    EvaluationError,
    forward_arg_names,
    int_option,
    load_hf,
    load_tokenizer,
    local_sentences,
    output_index,
)
from modelmill.remote_code import is_trusted

if TYPE_CHECKING:
    import numpy as np

DEFAULT_NUM_SAMPLES = 32
DEFAULT_MAX_LENGTH = 64
DEFAULT_EMBED_BATCH = 8


def reference_path(model: ModelRef, reference: ModelRef | Path | str | None) -> Path:
    """The HF folder to compare with: attributes["source_hf_path"], else ``reference``; an HF model is its own."""
    source = model.attributes.get("source_hf_path")
    if source:
        return Path(source)
    if isinstance(reference, ModelRef):
        if reference.kind != "hf":
            raise EvaluationError(f"the similarity reference {reference.path} is a {reference.kind} model",
                                  fix="use the original Hugging Face folder as the reference model")
        return reference.path
    if reference is not None:
        return Path(reference)
    if model.kind == "hf":
        return model.path
    raise EvaluationError(f"no PyTorch reference for {model.path}",
                          fix="evaluate with the input HF model as reference (or set the model's source_hf_path)")


def tokenize(folders: list[Path], sentences: list[str], max_length: int) -> tuple["np.ndarray", "np.ndarray"]:
    """Padded ids and attention mask (special tokens added, truncated to max_length)."""
    import numpy as np

    tokenizer = load_tokenizer(*folders)
    if tokenizer is not None:
        tokenizer.enable_truncation(max_length=max_length)
        rows = [enc.ids for enc in tokenizer.encode_batch(sentences)]
        pad_id = _pad_id(folders, tokenizer)
    else:
        from transformers import AutoTokenizer

        hf_tok = AutoTokenizer.from_pretrained(str(folders[0]), local_files_only=True, trust_remote_code=False)
        rows = [hf_tok(s, truncation=True, max_length=max_length)["input_ids"] for s in sentences]
        pad_id = hf_tok.pad_token_id or 0
    width = max(len(row) for row in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for index, row in enumerate(rows):
        ids[index, :len(row)] = row
        mask[index, :len(row)] = 1
    return ids, mask


def _pad_id(folders: list[Path], tokenizer: Any) -> int:
    for folder in folders:
        special = folder / "special_tokens_map.json"
        if special.exists():
            pad = json.loads(special.read_text()).get("pad_token")
            pad = pad.get("content") if isinstance(pad, dict) else pad
            if pad and tokenizer.token_to_id(pad) is not None:
                return int(tokenizer.token_to_id(pad))
    return 0


def mean_pool(hidden: "np.ndarray", mask: "np.ndarray") -> "np.ndarray":
    import numpy as np

    weights = mask[..., None].astype(np.float64)
    return (hidden.astype(np.float64) * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def embedder(model: ModelRef, execution_provider: str = "CPUExecutionProvider",
             intra_op_num_threads: int | None = None) -> Callable[["np.ndarray", "np.ndarray"], "np.ndarray"]:
    """(ids, mask) → mean-pooled embeddings, for an ONNX encoder or an HF folder."""
    import numpy as np

    if model.kind in ("onnx", "openvino"):
        session = model_session(model, execution_provider, intra_op_num_threads)
        names = {meta.name for meta in session.get_inputs()}
        at = output_index(session, ("last_hidden_state", "hidden_states", "token_embeddings"))

        def run_onnx(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            missing = names - set(feeds)
            if missing:
                raise EvaluationError(f"{model.model_file} takes inputs modelmill cannot fill: {sorted(missing)}",
                                      fix="similarity needs an encoder with input_ids/attention_mask inputs")
            hidden = session.run(None, {name: feeds[name] for name in names})[at]
            if hidden.ndim != 3:
                raise EvaluationError(f"{model.model_file} output {at} has shape {hidden.shape}, not "
                                      "[batch, sequence, hidden]", fix="similarity needs last_hidden_state")
            return mean_pool(hidden, mask)

        return run_onnx
    if model.kind == "hf":
        import torch

        hf_model = load_hf(model.path, class_name="AutoModel", trust_remote_code=is_trusted(model))
        accepted = forward_arg_names(hf_model)

        def run_hf(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            inputs: dict[str, Any] = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
            if "token_type_ids" in accepted:
                inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
            with torch.inference_mode():
                hidden = hf_model(**inputs).last_hidden_state.float().numpy()
            return mean_pool(hidden, mask)

        return run_hf
    raise EvaluationError(f"similarity of a {model.kind} model is not supported", fix="convert it to ONNX first")


def cosine_similarity(model: ModelRef, reference: ModelRef | Path | str | None = None,
                      metric_config: dict[str, Any] | None = None, *,
                      execution_provider: str = "CPUExecutionProvider") -> dict[str, float]:
    """{"cosine_mean", "cosine_min"} of the model's embeddings against the reference's over local sentences."""
    import numpy as np

    config = metric_config or {}
    ref_path = reference_path(model, reference)
    sentences = local_sentences(int_option(config, "num_samples", DEFAULT_NUM_SAMPLES))
    ids, mask = tokenize([ref_path, model.path], sentences, int_option(config, "max_length", DEFAULT_MAX_LENGTH))
    batch = max(1, int_option(config, "batch_size", DEFAULT_EMBED_BATCH))
    run_model = embedder(model, execution_provider)
    run_ref = embedder(ModelRef(kind="hf", path=ref_path))
    cosines = []
    for start in range(0, len(ids), batch):
        a = run_model(ids[start:start + batch], mask[start:start + batch])
        b = run_ref(ids[start:start + batch], mask[start:start + batch])
        if a.shape[1] != b.shape[1]:
            raise EvaluationError(
                f"{model.path}: its output has width {a.shape[1]} but the reference's embeddings have {b.shape[1]}; "
                "the model was probably exported with a language-model head instead of its hidden states",
                fix="export the encoder with task feature-extraction (input_model.task), then evaluate again")
        norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        cosines.extend(((a * b).sum(axis=1) / norms).tolist())
    return {"cosine_mean": float(np.mean(cosines)), "cosine_min": float(np.min(cosines))}


def encoder_throughput(model: ModelRef, metric_config: dict[str, Any] | None = None, *,
                       execution_provider: str = "CPUExecutionProvider") -> float:
    """Average samples/s at metric_config batch_size (1) and sequence_length (128), as the latency metric times it."""
    from modelmill.evaluate import latency

    timings = latency.measure(model, metric_config or {}, execution_provider=execution_provider)
    return timings.throughput("avg")
