"""accuracy metrics on local labelled text: accuracy_score, f1_score, precision, recall (and perplexity).

Data comes from a data config, in Olive's shape, read from local files only::

    {"name": "sst_local", "type": "HuggingfaceContainer",
     "load_dataset_config": {"params": {"data_name": "json", "data_files": "data/dev.jsonl"}},
     "pre_process_data_config": {"params": {"input_cols": ["sentence"], "label_col": "label",
                                            "max_length": 128, "max_samples": 200}}}

``data_files`` (a .jsonl/.json/.csv/.tsv path or a list; relative to ``data_dir``, itself relative to the
config's folder) are required; text columns may also be given as ``text_cols``/``text_field`` and the
label as ``label_field``. Two input columns are encoded as a sentence pair. String labels map through
the model's config.json ``label2id``, else to integers (digits) or sorted unique values.

The model (an ONNX classifier, or an HF folder loaded with its architecture) must output logits
``[batch, num_labels]``; predictions are their argmax (a single logit is thresholded at 0).

Scores follow torchmetrics' task wrappers: ``task`` is ``binary`` for two classes (positive class 1)
and ``multiclass`` otherwise, with ``average`` ``micro`` unless metric_config says ``macro`` or ``weighted``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill.engine.model import ModelRef
from modelmill.evaluate.openvino_runtime import model_session
from modelmill.evaluate.runtime import (
    EvaluationError,
    load_hf,
    load_tokenizer,
    output_index,
)
from modelmill.remote_code import is_trusted

if TYPE_CHECKING:
    import numpy as np

CLASSIFICATION_SUB_TYPES = ("accuracy_score", "f1_score", "precision", "recall")
DEFAULT_MAX_LENGTH = 128
DEFAULT_BATCH_SIZE = 8


def _params(component: Any) -> dict[str, Any]:
    if not isinstance(component, dict):
        return {}
    return {**{k: v for k, v in component.items() if k not in ("type", "params")}, **(component.get("params") or {})}


def data_settings(data_config: dict[str, Any]) -> dict[str, Any]:
    """Flattened settings of an Olive data config (or of a flat dict with the same keys)."""
    load = _params(data_config.get("load_dataset_config"))
    pre = _params(data_config.get("pre_process_data_config"))
    loader = _params(data_config.get("dataloader_config"))
    merged = {**{k: v for k, v in data_config.items() if not isinstance(v, dict)}, **load, **pre, **loader}
    return merged


def _data_files(settings: dict[str, Any], base_dir: Path | None, name: str) -> list[Path]:
    files = settings.get("data_files") or settings.get("data_file") or settings.get("path")
    if not files:
        source = settings.get("data_name") or "the Hugging Face hub"
        raise EvaluationError(f"data_config {name!r}: no local data_files (modelmill does not download {source})",
                              fix='set load_dataset_config.params.data_files to a local .jsonl or .csv file')
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    data_dir = Path(settings.get("data_dir") or ".")
    data_dir = data_dir if data_dir.is_absolute() else base / data_dir
    if isinstance(files, dict):  # {"train": ..., "validation": ...}: take the requested split
        files = files.get(settings.get("split") or "") or next(iter(files.values()))
    files = [files] if isinstance(files, str) else list(files)
    return [Path(f) if Path(f).is_absolute() else data_dir / f for f in files]


def read_records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise EvaluationError(f"data file {path} does not exist", fix="check data_files / data_dir")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    if path.suffix == ".json":
        data = json.loads(text)
        return data if isinstance(data, list) else (data.get("data") or data.get("rows") or [])
    if path.suffix in (".csv", ".tsv"):
        return list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ","))
    raise EvaluationError(f"cannot read {path.name}", fix="use a .jsonl, .json, .csv or .tsv file")


def load_labelled(data_config: dict[str, Any], base_dir: Path | None = None,
                  label2id: dict[str, int] | None = None) -> tuple[list[list[str]], list[int], dict[str, Any]]:
    """(texts per sample (1 or 2 columns), integer labels, settings) of a local labelled data config."""
    settings = data_settings(data_config)
    name = str(data_config.get("name", ""))
    records = [r for path in _data_files(settings, base_dir, name) for r in read_records(path)]
    limit = settings.get("max_samples") or settings.get("limit")
    if limit:
        records = records[:int(limit)]
    if not records:
        raise EvaluationError(f"data_config {name!r} has no records", fix="check the data file")
    cols = settings.get("input_cols") or settings.get("text_cols") or settings.get("text_field") or \
        [c for c in ("text", "sentence", "content", "input") if c in records[0]][:1]
    cols = [cols] if isinstance(cols, str) else list(cols)
    label_col = settings.get("label_col") or settings.get("label_cols") or settings.get("label_field") or "label"
    label_col = label_col[0] if isinstance(label_col, list) else label_col
    for col in [*cols[:2], label_col]:
        if col not in records[0]:
            raise EvaluationError(f"data_config {name!r}: records have no field {col!r} "
                                  f"(fields: {', '.join(records[0])})", fix="set input_cols and label_col")
    if not cols:
        raise EvaluationError(f"data_config {name!r}: no text column", fix="set input_cols")
    texts = [[str(record[col]) for col in cols[:2]] for record in records]
    raw = [record[label_col] for record in records]
    return texts, _label_ids(raw, label2id), settings


def _label_ids(raw: list[Any], label2id: dict[str, int] | None) -> list[int]:
    if all(isinstance(v, (int, float)) for v in raw):  # bool is an int
        return [int(v) for v in raw]
    values = [str(v).strip() for v in raw]
    if label2id and all(v in label2id for v in values):
        return [int(label2id[v]) for v in values]
    if all(v.lstrip("-").isdigit() for v in values):
        return [int(v) for v in values]
    mapping = {v: i for i, v in enumerate(sorted(set(values)))}
    return [mapping[v] for v in values]


# ---------------------------------------------------------------------------------------------- predictions

def predict(model: ModelRef, texts: list[list[str]], max_length: int = DEFAULT_MAX_LENGTH,
            batch_size: int = DEFAULT_BATCH_SIZE, execution_provider: str = "CPUExecutionProvider",
            pad_to_max_length: bool = False) -> "np.ndarray":
    """Logits [samples, num_labels] of a classifier over the texts. Batches are padded to their longest text, or
    to ``max_length`` (``pad_to_max_length``: the data config's ``padding: max_length``); an ONNX model with a fixed
    batch or sequence dimension (DynamicToFixedShape) gets batches of that shape."""
    import numpy as np

    fixed_batch = 0  # a fixed batch dimension: the last batch is filled up with empty rows, their logits dropped
    source = model.attributes.get("source_hf_path")
    tokenizer = load_tokenizer(model.path, Path(source) if source else None)
    if tokenizer is None:
        raise EvaluationError(f"no tokenizer.json in {model.path}", fix="keep the tokenizer files beside the model")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    if model.kind in ("onnx", "openvino"):
        session = model_session(model, execution_provider)
        names = {meta.name for meta in session.get_inputs()}
        at = output_index(session, ("logits",))
        shape = next((meta.shape for meta in session.get_inputs() if meta.name == "input_ids"), [])
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] > 0:
            max_length, pad_to_max_length = shape[1], True
        if shape and isinstance(shape[0], int) and shape[0] > 0:
            batch_size = fixed_batch = shape[0]

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return session.run(None, {k: v for k, v in feeds.items() if k in names})[at]
    elif model.kind == "hf":
        import torch

        from modelmill.evaluate.runtime import forward_arg_names

        hf_model = load_hf(model.path, task=model.attributes.get("task") or "text-classification",
                           trust_remote_code=is_trusted(model))
        accepted = forward_arg_names(hf_model)

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                out = hf_model(**{k: torch.from_numpy(v) for k, v in feeds.items() if k in accepted})
            return out.logits.float().numpy()
    else:
        raise EvaluationError(f"accuracy of a {model.kind} model is not supported", fix="convert it first")
    outputs = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start:start + batch_size]
        encodings = [tokenizer.encode(*pair) for pair in batch]
        width = max_length if pad_to_max_length else max(len(enc.ids) for enc in encodings)
        feeds = {name: np.zeros((fixed_batch or len(batch), width), dtype=np.int64)
                 for name in ("input_ids", "attention_mask", "token_type_ids")}
        for row, enc in enumerate(encodings):
            n = len(enc.ids)
            feeds["input_ids"][row, :n] = enc.ids
            feeds["attention_mask"][row, :n] = 1
            feeds["token_type_ids"][row, :n] = enc.type_ids
        logits = np.asarray(run(feeds))[:len(batch)]
        if logits.ndim != 2:
            raise EvaluationError(f"classifier output has shape {logits.shape}, not [batch, num_labels]",
                                  fix="accuracy needs a sequence-classification model that returns logits")
        outputs.append(logits)
    return np.concatenate(outputs)


def predictions(logits: "np.ndarray") -> "np.ndarray":
    import numpy as np

    if logits.shape[-1] == 1:
        return (logits[:, 0] > 0).astype(np.int64)
    return logits.argmax(axis=-1).astype(np.int64)


# ---------------------------------------------------------------------------------------------- scores

def classification_scores(preds: "np.ndarray", labels: "np.ndarray", task: str | None = None,
                          average: str | None = None, num_classes: int | None = None) -> dict[str, float]:
    """accuracy_score, f1_score, precision, recall like torchmetrics' Accuracy/F1Score/Precision/Recall wrappers."""
    import numpy as np

    preds, labels = np.asarray(preds).astype(np.int64), np.asarray(labels).astype(np.int64)
    classes = int(num_classes or max(int(preds.max(initial=0)), int(labels.max(initial=0))) + 1)
    task = task or ("binary" if classes <= 2 else "multiclass")

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b else 0.0

    if task == "binary":
        tp = float(((preds == 1) & (labels == 1)).sum())
        fp = float(((preds == 1) & (labels != 1)).sum())
        fn = float(((preds != 1) & (labels == 1)).sum())
        precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
        return {"accuracy_score": float((preds == labels).mean()), "precision": precision, "recall": recall,
                "f1_score": ratio(2 * precision * recall, precision + recall)}
    average = average or "micro"
    if average == "micro":
        accuracy = float((preds == labels).mean())
        return {name: accuracy for name in CLASSIFICATION_SUB_TYPES}
    if average not in ("macro", "weighted"):
        raise EvaluationError(f"unsupported average {average!r}", fix="use micro, macro or weighted")
    tp = np.array([((preds == c) & (labels == c)).sum() for c in range(classes)], dtype=np.float64)
    fp = np.array([((preds == c) & (labels != c)).sum() for c in range(classes)], dtype=np.float64)
    fn = np.array([((preds != c) & (labels == c)).sum() for c in range(classes)], dtype=np.float64)
    support = tp + fn
    precision = np.divide(tp, tp + fp, out=np.zeros(classes), where=(tp + fp) > 0)
    recall = np.divide(tp, support, out=np.zeros(classes), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(classes), where=(precision + recall) > 0)
    if average == "weighted":
        weights = support / max(support.sum(), 1.0)
    else:  # torchmetrics' macro skips classes absent from both preds and labels
        present = (support + fp) > 0
        weights = present / max(present.sum(), 1)
    # Multiclass accuracy with macro/weighted averaging is the averaged per-class recall, as in torchmetrics.
    return {"accuracy_score": float((recall * weights).sum()), "precision": float((precision * weights).sum()),
            "recall": float((recall * weights).sum()), "f1_score": float((f1 * weights).sum())}


def evaluate_classification(model: ModelRef, data_config: dict[str, Any], metric_config: dict[str, Any] | None = None,
                            *, base_dir: Path | None = None,
                            execution_provider: str = "CPUExecutionProvider") -> dict[str, float]:
    """The four classification scores of ``model`` on a local labelled data config."""
    import numpy as np

    config = metric_config or {}
    label2id = model.hf_config().get("label2id")
    texts, labels, settings = load_labelled(data_config, base_dir, label2id)
    logits = predict(model, texts, int(settings.get("max_length") or config.get("max_length") or DEFAULT_MAX_LENGTH),
                     int(settings.get("batch_size") or DEFAULT_BATCH_SIZE), execution_provider,
                     pad_to_max_length=settings.get("padding") == "max_length")
    num_classes = config.get("num_classes") or (logits.shape[-1] if logits.shape[-1] > 1 else 2)
    return classification_scores(predictions(logits), np.asarray(labels), config.get("task"), config.get("average"),
                                 int(num_classes))


def local_texts_of(data_config: dict[str, Any], base_dir: Path | None = None) -> list[str]:
    """Plain texts of a local data config (for perplexity): .txt paragraphs or the text column of records."""
    import re

    settings = data_settings(data_config)
    texts: list[str] = []
    for path in _data_files(settings, base_dir, str(data_config.get("name", ""))):
        if path.suffix == ".txt":
            texts.extend(p.strip() for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")) if p.strip())
            continue
        records = read_records(path)
        cols = settings.get("input_cols") or settings.get("text_cols") or settings.get("text_field") or \
            [c for c in ("text", "content", "sentence", "input") if records and c in records[0]][:1]
        col = cols if isinstance(cols, str) else (cols[0] if cols else "text")
        texts.extend(str(r[col]) for r in records if col in r)
    return texts
