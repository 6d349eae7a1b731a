"""Training text from local data: files, folders, ``save_to_disk`` folders and ``sample:instructions``.

Olive's fine-tuning flags name a data set (``--data_name``), a split and how to turn a record into
text (``--text_template``, ``--text_field`` or ``--use_chat_template``). Here the data must be local:
a hub id gets a clear offline error. Template fields are checked against the data's columns before
any model is loaded, so a typo costs a second, not a training run.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill.errors import PassError

if TYPE_CHECKING:
    import datasets

SAMPLE_DATA = {"sample:instructions"}
LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
CHAT_PAIRS = (("instruction", "response"), ("question", "answer"), ("prompt", "completion"), ("input", "output"))


@dataclass(frozen=True)
class TextSpec:
    """How one record becomes one training text (exactly one of the three is used)."""

    text_template: str | None = None
    text_field: str | None = None
    use_chat_template: bool = False

    def fields(self) -> list[str]:
        """The record fields this spec reads."""
        if self.text_template:
            return template_fields(self.text_template)
        if self.text_field:
            return [self.text_field]
        return []


def unescape_template(template: str) -> str:
    """Turn the two-character escapes a shell leaves in ``"...\\n..."`` into real newlines and tabs."""
    return template.replace("\\n", "\n").replace("\\t", "\t")


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a template uses, in order of first use."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise PassError(f"text_template {template!r} is not a valid template: {exc}",
                        fix="write fields in braces, e.g. \"### Question: {instruction}\\n### Answer: {response}\"; "
                            "write a literal brace as {{ or }}", where="text_template") from exc
    if any(name == "" or name.isdigit() for name in names):
        raise PassError(f"text_template {template!r} has an empty or numbered field",
                        fix="name every field after a column of the data, e.g. {instruction}", where="text_template")
    return list(dict.fromkeys(re.split(r"[.\[]", name)[0] for name in names))


def resolve_data_path(data_name: str) -> Path:
    """The local path of ``data_name``; samples are built on first use; hub ids are refused."""
    if data_name in SAMPLE_DATA:
        from modelmill.finetune.instructions import sample_dir

        return sample_dir()
    if data_name.startswith("sample:"):
        raise PassError(f"unknown sample data set {data_name!r}", fix=f"use {', '.join(sorted(SAMPLE_DATA))}",
                        where="data_name")
    path = Path(data_name).expanduser()
    if path.exists():
        return path.resolve()
    if data_name.count("/") == 1 and not data_name.startswith((".", "/", "~")):
        raise PassError(f"data set '{data_name}' not found locally; ModelMill does not download from the Hugging "
                        "Face hub", fix="pass a local JSONL / JSON / CSV / Parquet file, a folder of them, a "
                        "datasets.save_to_disk folder, or sample:instructions", where="data_name")
    raise PassError(f"data path '{data_name}' does not exist",
                    fix="pass an existing local file or folder, or sample:instructions", where="data_name")


def load_split(data_name: str, split: str, cache_dir: Path) -> "datasets.Dataset":
    """One split of a local data set (``split`` may slice, e.g. ``train[:80%]``)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    path = resolve_data_path(data_name)
    base, _, _ = split.partition("[")
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if base not in loaded:
                raise PassError(f"split {base!r} is not in {path}; it has {', '.join(loaded)}",
                                fix="pass one of those to --train_split / --eval_split", where="split")
            loaded = loaded[base]
        return _slice(loaded, split)
    data_files = _data_files(path)
    loader = _loader(data_files)
    if base not in data_files:
        raise PassError(f"split {base!r} is not in {path}; it has {', '.join(data_files)}",
                            fix="pass one of those, or name the files after their split (train.jsonl, "
                                "test.jsonl)", where="split")
    try:
        return datasets.load_dataset(loader, data_files=data_files, split=split, cache_dir=str(cache_dir))
    except (ValueError, datasets.exceptions.DatasetGenerationError) as exc:
        cause = exc.__cause__ or exc  # datasets wraps the parser's message
        raise PassError(f"cannot read {path}: {cause}", fix="check the file is valid "
                        f"{loader.upper()} with one record per row", where="data_name") from exc


def _data_files(path: Path) -> dict[str, list[str]]:
    """Split name → files. A single file is the train split; in a folder, files named after a split
    (train.jsonl, validation.csv, test-00001.parquet ...) are that split and the rest are train."""
    if path.is_file():
        if path.suffix not in LOADERS:
            raise PassError(f"{path.name}: unsupported data file type {path.suffix!r}",
                            fix=f"use one of {', '.join(LOADERS)}", where="data_name")
        return {"train": [str(path)]}
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in LOADERS and not p.name.startswith("."))
    if not files:
        raise PassError(f"folder {path} holds no data files", fix=f"put {', '.join(LOADERS)} files in it",
                        where="data_name")
    splits: dict[str, list[str]] = {}
    for file in files:
        match = re.match(r"(train|validation|valid|eval|test)\b", file.stem)
        splits.setdefault(match.group(1) if match else "train", []).append(str(file))
    return splits


def _loader(data_files: dict[str, list[str]]) -> str:
    kinds = {LOADERS[Path(f).suffix] for files in data_files.values() for f in files}
    if len(kinds) > 1:
        raise PassError(f"the data mixes file types ({', '.join(sorted(kinds))})",
                        fix="keep one file type per data set", where="data_name")
    return kinds.pop()


def _slice(dataset: "datasets.Dataset", split: str) -> "datasets.Dataset":
    match = re.search(r"\[(-?\d*)(%?):(-?\d*)(%?)\]$", split)
    if not match:
        return dataset
    size = len(dataset)

    def bound(text: str, percent: str, default: int) -> int:
        if not text:
            return default
        value = int(text) * size // 100 if percent else int(text)
        return value + size if value < 0 else value

    return dataset.select(range(bound(match.group(1), match.group(2), 0), bound(match.group(3), match.group(4), size)))


def check_fields(dataset: "datasets.Dataset", spec: TextSpec, data_name: str) -> None:
    """Every field the spec reads must be a column: fail before training, listing what the data has."""
    columns = list(dataset.column_names)
    missing = [name for name in spec.fields() if name not in columns]
    if missing:
        where = "text_template" if spec.text_template else "text_field"
        raise PassError(f"{where} uses field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} that "
                        f"{data_name} does not have; its fields are: {', '.join(columns)}",
                        fix=f"change {where} to use those fields, e.g. {{{columns[0]}}}" if columns else
                        "check the data file", where=where)
    if spec.use_chat_template and "messages" not in columns and not _chat_pair(columns):
        raise PassError(f"--use_chat_template needs a 'messages' column or a question/answer pair of columns; "
                        f"{data_name} has: {', '.join(columns)}",
                        fix="use --text_template instead, naming the fields", where="use_chat_template")
    if not (spec.text_template or spec.text_field or spec.use_chat_template) and "text" not in columns:
        raise PassError(f"no --text_template, --text_field or --use_chat_template given, and {data_name} has no "
                        f"'text' column (it has: {', '.join(columns)})",
                        fix="pass --text_template with the fields, e.g. \"{" + (columns[0] if columns else "field")
                            + "}\"", where="text_template")


def _chat_pair(columns: list[str]) -> tuple[str, str] | None:
    return next((pair for pair in CHAT_PAIRS if pair[0] in columns and pair[1] in columns), None)


def record_text(record: dict[str, Any], spec: TextSpec, tokenizer: Any) -> str:
    """The training text of one record."""
    if spec.text_template:
        return spec.text_template.format(**{k: "" if v is None else v for k, v in record.items()})
    if spec.text_field:
        return str(record[spec.text_field])
    if spec.use_chat_template:
        if "messages" in record:
            messages = record["messages"]
        else:
            user, assistant = _chat_pair(list(record))  # type: ignore[misc]
            question = record[user] if not record.get("context") else f"{record['context']}\n\n{record[user]}"
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": record[assistant]}]
        return tokenizer.apply_chat_template(messages, tokenize=False)
    return str(record["text"])


def tokenize(dataset: "datasets.Dataset", spec: TextSpec, tokenizer: Any, max_seq_len: int) -> "datasets.Dataset":
    """Token ids per record (with the end-of-text token, so the model learns to stop), truncated."""
    eos = tokenizer.eos_token or ""
    if spec.use_chat_template and not getattr(tokenizer, "chat_template", None):
        raise PassError("--use_chat_template: the model's tokenizer has no chat template",
                        fix="use --text_template with the data's fields instead", where="use_chat_template")

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        texts = [record_text(row, spec, tokenizer) + ("" if spec.use_chat_template else eos) for row in rows]
        return tokenizer(texts, truncation=True, max_length=max_seq_len)

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names)
