"""Inputs for running models: input specs read from ONNX files, dummy feeds and calibration data.

Nothing here downloads: calibration text comes from local files or from Python's own
``pydoc_data.topics``; without a tokenizer, token ids are random within the vocabulary.
Olive ``data_configs`` entries are understood in their common forms (see ``calibration_feeds``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill.engine.model import ModelRef
from modelmill.errors import PassError

if TYPE_CHECKING:
    import numpy as np

DUMMY_CONTAINERS = ("DummyDataContainer", "TransformersDummyDataContainer", "TransformersTokenDummyDataContainer",
                    "TransformersPromptDummyDataContainer")
DUMMY_DATASETS = ("dummy_dataset", "transformers_dummy_dataset", "transformers_token_dummy_dataset",
                  "transformers_prompt_dummy_dataset")
TEXT_FIELDS = ("text", "content", "prompt", "sentence", "question", "input")
DEFAULT_VOCAB = 256


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, numpy dtype name, shape (ints, dim names, or None for unknown)."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    @property
    def is_past_kv(self) -> bool:
        return bool(re.search(r"past|cache", self.name))


def onnx_input_specs(model_file: Path) -> list[InputSpec]:
    """The graph inputs of an ONNX file (weights are not loaded)."""
    import onnx

    proto = onnx.load(str(model_file), load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}
    specs = []
    for value in proto.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        shape = tuple(dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
                      for dim in tensor_type.shape.dim)
        specs.append(InputSpec(value.name, dtype, shape))
    return specs


def model_dims(model: ModelRef) -> dict[str, int]:
    """Dimension values a model's configs imply (head size for KV-cache dims, vocabulary size)."""
    dims: dict[str, int] = {}
    genai = model.path / "genai_config.json"
    if genai.exists():
        decoder = json.loads(genai.read_text()).get("model", {}).get("decoder", {})
        if decoder.get("head_size"):
            dims["head_size"] = int(decoder["head_size"])
        if decoder.get("num_key_value_heads"):
            dims["num_key_value_heads"] = int(decoder["num_key_value_heads"])
    config = model.hf_config()
    if config.get("num_attention_heads") and config.get("hidden_size"):
        dims.setdefault("head_size", int(config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]))
        dims.setdefault("num_key_value_heads", int(config.get("num_key_value_heads") or config["num_attention_heads"]))
    vocab = vocab_size(model)
    if vocab:
        dims["vocab_size"] = vocab
    return dims


def vocab_size(model: ModelRef) -> int | None:
    """Vocabulary size from config.json or genai_config.json, if either is there."""
    size = model.hf_config().get("vocab_size")
    genai = model.path / "genai_config.json"
    if not size and genai.exists():
        size = json.loads(genai.read_text()).get("model", {}).get("vocab_size")
    return int(size) if size else None


def resolve_shape(spec: InputSpec, batch_size: int = 1, sequence_length: int = 64, past_sequence_length: int = 0,
                  dims: dict[str, int] | None = None) -> tuple[int, ...]:
    """Concrete dims for an input: fixed dims stay; named dims are guessed from their names.

    ``dims`` maps dim names (or ``head_size``) to values and wins over the guesses.
    """
    dims = dims or {}
    shape = []
    for index, dim in enumerate(spec.shape):
        if isinstance(dim, int) and dim > 0:
            shape.append(dim)
            continue
        name = (dim or "").lower()
        if dim and dim in dims:
            value = dims[dim]
        elif "batch" in name or (index == 0 and not name):
            value = batch_size
        elif spec.is_past_kv:  # (batch, kv heads, past length, head size)
            if "past" in name or "seq" in name or "len" in name or (index == 2 and not name):
                value = past_sequence_length
            elif index == 1:
                value = dims.get("num_key_value_heads", 1)
            elif index == 3:
                value = dims.get("head_size", 1)
            else:
                value = 1
        elif "total" in name:
            value = past_sequence_length + sequence_length
        elif "past" in name:
            value = past_sequence_length
        elif "seq" in name or "len" in name or (index == 1 and not name):
            value = sequence_length
        else:
            value = 1
        shape.append(value)
    return tuple(shape)


def dummy_feeds(specs: list[InputSpec], batch_size: int = 1, sequence_length: int = 64, past_sequence_length: int = 0,
                dims: dict[str, int] | None = None, seed: int = 0) -> dict[str, "np.ndarray"]:
    """Random feeds for every input: token ids within the vocabulary, masks of ones, empty past KV caches."""
    import numpy as np

    rng = np.random.default_rng(seed)
    dims = dims or {}
    vocab = dims.get("vocab_size", DEFAULT_VOCAB)
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = resolve_shape(spec, batch_size, sequence_length, past_sequence_length, dims)
        feeds[spec.name] = _value_for(spec, shape, rng, vocab, past_sequence_length)
    return feeds


def _value_for(spec: InputSpec, shape: tuple[int, ...], rng: "np.random.Generator", vocab: int,
               past_sequence_length: int = 0) -> "np.ndarray":
    import numpy as np

    dtype = np.dtype(spec.dtype)
    name = spec.name.lower()
    if "mask" in name:
        return np.ones(shape, dtype=dtype)
    if "position" in name:
        positions = np.arange(past_sequence_length, past_sequence_length + shape[-1]) if shape else np.zeros(())
        return np.broadcast_to(positions, shape).astype(dtype)
    if "token_type" in name or spec.is_past_kv:
        return np.zeros(shape, dtype=dtype)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, vocab, size=shape).astype(dtype)
    if dtype == np.bool_:
        return np.ones(shape, dtype=dtype)
    return rng.standard_normal(shape).astype(dtype)


def feeds_from_tokens(specs: list[InputSpec], token_ids: list[int], dims: dict[str, int] | None = None,
                      rng_seed: int = 0) -> dict[str, "np.ndarray"]:
    """Feeds for one sequence of token ids (batch 1, no past), filling the other inputs like ``dummy_feeds``."""
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    dims = dims or {}
    feeds: dict[str, np.ndarray] = {}
    for spec in specs:
        shape = resolve_shape(spec, 1, len(token_ids), 0, dims)
        if spec.name.endswith("input_ids"):
            ids = np.asarray(token_ids, dtype=np.dtype(spec.dtype))
            feeds[spec.name] = ids.reshape(shape) if int(np.prod(shape)) == ids.size else np.resize(ids, shape)
        else:
            feeds[spec.name] = _value_for(spec, shape, rng, dims.get("vocab_size", DEFAULT_VOCAB))
    return feeds


def _fixed_sequence_length(specs: list[InputSpec]) -> int | None:
    for spec in specs:
        if spec.name.endswith("input_ids") and len(spec.shape) >= 2 and isinstance(spec.shape[1], int) \
                and spec.shape[1] > 0:
            return spec.shape[1]
    return None


def _tokenizer(model: ModelRef) -> Any:
    """The model folder's tokenizer.json as a ``tokenizers.Tokenizer``, or None."""
    path = model.path / "tokenizer.json" if model.path.is_dir() else model.path.parent / "tokenizer.json"
    if not path.exists():
        return None
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(path))
        # Some tokenizer.json files pad every row to a fixed length; callers pad (and mask) themselves.
        tokenizer.no_padding()
        return tokenizer
    except Exception:  # noqa: BLE001 - a broken tokenizer falls back to random ids
        return None


def local_texts() -> list[str]:
    """English text shipped with Python (the pydoc topics), in a stable order."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def _token_windows(tokenizer: Any, texts: list[str], sequence_length: int, max_samples: int) -> list[list[int]]:
    """Up to ``max_samples`` windows of ``sequence_length`` tokens: the start of each text, short texts joined with the
    next ones; a single shorter window when all the text together is too short."""
    windows: list[list[int]] = []
    carry: list[int] = []
    for text in texts:
        if len(windows) >= max_samples:
            break
        ids = carry + tokenizer.encode(text).ids
        if len(ids) < sequence_length:
            carry = ids
            continue
        windows.append(ids[:sequence_length])
        carry = []
    if not windows and carry:
        windows.append(carry)
    return windows


def _read_texts(path: Path, text_field: str | None) -> list[str]:
    """Texts of a local .txt (blank-line separated), .jsonl or .json file."""
    if not path.exists():
        raise PassError(f"data_config: data file {path} does not exist", fix="check data_files (a local path)")
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return [part.strip() for part in re.split(r"\n\s*\n", raw) if part.strip()]
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    elif path.suffix == ".json":
        data = json.loads(raw)
        records = data if isinstance(data, list) else data.get("data") or data.get("rows") or [data]
    else:
        raise PassError(f"data_config: cannot read {path.name} (only .txt, .jsonl and .json are supported)",
                        fix="convert the data to a .jsonl file with a text field")
    texts = []
    for record in records:
        if isinstance(record, str):
            texts.append(record)
            continue
        fields = [text_field] if text_field else [f for f in TEXT_FIELDS if f in record]
        if not fields or fields[0] not in record:
            raise PassError(f"data_config: records in {path.name} have no field {text_field or TEXT_FIELDS[0]!r}",
                            fix="set text_cols (or text_field) to the name of the text field")
        texts.append(str(record[fields[0]]))
    return texts


def _params(component: Any) -> dict[str, Any]:
    """A data-config component's params, written nested under ``params`` or flat."""
    if not isinstance(component, dict):
        return {}
    flat = {key: value for key, value in component.items() if key not in ("type", "params")}
    return {**flat, **(component.get("params") or {})}


def resolve_data_config(data_config: str | dict[str, Any] | None,
                        data_configs: dict[str, Any]) -> dict[str, Any] | None:
    """An inline data config as it is; a name looked up in the workflow's ``data_configs``."""
    if not isinstance(data_config, str):
        return data_config
    if data_config not in data_configs:
        defined = ", ".join(sorted(data_configs)) or "none"
        raise PassError(f"data_config {data_config!r} is not defined (defined: {defined})",
                        fix="add an entry with that name under data_configs, or use one of the defined names")
    found = data_configs[data_config]
    if hasattr(found, "model_dump"):
        found = found.model_dump()
    return dict(found)


def calibration_feeds(model: ModelRef, data_config: dict[str, Any] | None, input_specs: list[InputSpec],
                      max_samples: int, sequence_length: int = 32, seed: int = 0) -> list[dict[str, "np.ndarray"]]:
    """Calibration inputs for ``model`` (batch 1 each, empty past KV cache).

    - ``data_config`` None: windows of the model's tokenizer (tokenizer.json) over the pydoc topics
      text; random token ids within the vocabulary when there is no tokenizer.
    - Olive dummy containers (``DummyDataContainer``, ``TransformersTokenDummyDataContainer``, ...):
      random inputs; ``load_dataset_config.params`` may give ``input_names``/``input_shapes``,
      ``seq_len``, ``batch_size``, ``max_samples``.
    - ``load_dataset_config: {type: local_dataset, params: {data_files, text_cols | text_field}}``:
      texts from a local .txt/.jsonl/.json file, tokenized like the default.
    """
    if max_samples < 1:
        raise PassError("max_samples must be at least 1", fix="set max_calibration_samples to 1 or more")
    dims = model_dims(model)
    sequence_length = _fixed_sequence_length(input_specs) or sequence_length
    if data_config is None:
        return _text_feeds(model, local_texts(), input_specs, max_samples, sequence_length, dims, seed)
    if not isinstance(data_config, dict):
        raise PassError(f"data_config must be a dict or a name, not {type(data_config).__name__}",
                        fix="define it under data_configs and give its name")
    load = data_config.get("load_dataset_config") or {}
    load_type = load.get("type") if isinstance(load, dict) else None
    load_params = _params(load)
    pre_params = _params(data_config.get("pre_process_data_config"))
    limit = pre_params.get("max_samples") or pre_params.get("limit") or load_params.get("max_samples")
    max_samples = min(max_samples, int(limit)) if limit else max_samples
    container = data_config.get("type", "DataContainer")
    if container in DUMMY_CONTAINERS or load_type in DUMMY_DATASETS:
        return _dummy_config_feeds(load_params, input_specs, max_samples, sequence_length, dims, seed)
    local = _local_data_files(load_params)
    if local is not None or load_type == "local_dataset" or (load_type is None and "data_files" in load_params):
        data_dir, files = local or (Path(load_params.get("data_dir") or "."), _file_list(load_params.get("data_files")))
        if not files:
            raise PassError("data_config: local_dataset needs data_files", fix="set load_dataset_config.params.data_files")
        # Olive's text_field arrives as text_cols; input_cols name the columns the tokenizer reads.
        text_field = (load_params.get("text_cols") or load_params.get("text_field") or pre_params.get("text_cols")
                      or pre_params.get("text_field") or pre_params.get("input_cols"))
        if isinstance(text_field, list):
            text_field = text_field[0] if text_field else None
        texts = [text for name in files for text in _read_texts(data_dir / name, text_field)]
        seq = int(pre_params.get("max_seq_len") or pre_params.get("seq_len") or load_params.get("seq_len") or
                  sequence_length)
        return _text_feeds(model, texts, input_specs, max_samples, seq, dims, seed)
    name = data_config.get("name", "")
    raise PassError(f"data_config {name!r}: {load_type or container} needs a download or a user script, which "
                    "modelmill does not run", fix="use a local_dataset (data_files: a local .txt/.jsonl/.json file), a "
                    "DummyDataContainer, or leave data_config out to calibrate on built-in text")


def hub_dataset(data_config: Any) -> str | None:
    """The Hugging Face hub data set a data config would download (its data_name), else None.

    None for what ModelMill reads: no load_dataset_config, dummy containers and datasets, a local file or folder
    (made absolute when the run is planned), a loader name (json, text, ...) with data_files, and the ``sample:``
    data sets; None too for a loader of another type (a user script's own, local_dataset): it is refused or read
    where it is used. A user script does not change Olive's huggingface_dataset loader, which downloads. Olive's
    example configs name hub sets (glue, facebook/xnli, allenai/c4); the run is refused before any pass runs
    rather than when a pass or metric first reads the data.
    """
    if not isinstance(data_config, dict):
        return None
    load = data_config.get("load_dataset_config")
    if not isinstance(load, dict):
        return None
    load_type = load.get("type")
    if data_config.get("type", "HuggingfaceContainer") in DUMMY_CONTAINERS or load_type in DUMMY_DATASETS:
        return None
    if load_type not in (None, "huggingface_dataset"):
        return None
    name = _params(load).get("data_name")
    if not isinstance(name, str) or not name or name.startswith("sample:"):
        return None
    if name in ("json", "text", "csv", "parquet", "arrow") or Path(name).expanduser().exists():
        return None
    # a path that is missing (absolute, ./, ~, a data file's suffix) is no hub id: its pass says it is not found
    if name.startswith((".", "/", "~")) or Path(name).suffix in (".json", ".jsonl", ".txt", ".csv", ".parquet",
                                                                 ".tsv", ".arrow", ".gz") or name.count("/") > 1:
        return None
    return name


def _file_list(files: Any) -> list[str]:
    """data_files as Olive writes them: a list, or one string (comma-separated on the command line)."""
    if not files:
        return []
    if isinstance(files, str):
        return [part.strip() for part in files.split(",") if part.strip()]
    return [str(f) for f in files]


def _local_data_files(load_params: dict[str, Any]) -> tuple[Path, list[str]] | None:
    """A HuggingfaceContainer's data_name as `load_dataset` reads it locally: a data file, a folder (its data_files,
    or every .txt/.jsonl/.json in it), or a format name (json, text) with data_files. None for a hub dataset name."""
    name = load_params.get("data_name")
    if not isinstance(name, str) or not name:
        return None
    files = _file_list(load_params.get("data_files"))
    path = Path(name).expanduser()
    if path.is_file():
        return path.parent, [path.name]
    if path.is_dir():
        found = files or sorted(p.name for p in path.iterdir() if p.suffix in (".txt", ".jsonl", ".json"))
        if not found:
            raise PassError(f"data_config: the folder {path} has no .txt, .jsonl or .json data file",
                            fix="put the calibration data in a .jsonl file there, or name it with data_files")
        return path, found
    if name in ("json", "text") and files:
        return Path(load_params.get("data_dir") or "."), files
    return None


def _text_feeds(model: ModelRef, texts: list[str], specs: list[InputSpec], max_samples: int, sequence_length: int,
                dims: dict[str, int], seed: int) -> list[dict[str, "np.ndarray"]]:
    tokenizer = _tokenizer(model)
    if tokenizer is None or not any(spec.name.endswith("input_ids") for spec in specs):
        return [dummy_feeds(specs, 1, sequence_length, 0, dims, seed + index) for index in range(max_samples)]
    vocab = dims.get("vocab_size")
    windows = _token_windows(tokenizer, texts, sequence_length, max_samples)
    if vocab:
        windows = [[min(token, vocab - 1) for token in window] for window in windows]
    return [feeds_from_tokens(specs, window, dims, seed + index) for index, window in enumerate(windows)]


def _dummy_config_feeds(params: dict[str, Any], specs: list[InputSpec], max_samples: int, sequence_length: int,
                        dims: dict[str, int], seed: int) -> list[dict[str, "np.ndarray"]]:
    import numpy as np

    batch = int(params.get("batch_size") or 1)
    seq = int(params.get("seq_len") or params.get("max_seq_len") or sequence_length)
    past = int(params.get("past_seq_len") or 0)
    names = params.get("input_names")
    shapes = params.get("input_shapes")
    if shapes and not names:
        names = [spec.name for spec in specs][:len(shapes)]
    overrides = dict(zip(names or [], shapes or []))
    known = {spec.name for spec in specs}
    unknown = [name for name in overrides if name not in known]
    if unknown:
        raise PassError(f"data_config: input_names {unknown} are not inputs of the model",
                        fix=f"the model's inputs are: {', '.join(sorted(known))}")
    samples = []
    for index in range(max_samples):
        feeds = dummy_feeds(specs, batch, seq, past, dims, seed + index)
        rng = np.random.default_rng(seed + index)
        for spec in specs:
            if spec.name in overrides:
                shape = tuple(int(d) for d in overrides[spec.name])
                feeds[spec.name] = _value_for(spec, shape, rng, dims.get("vocab_size", DEFAULT_VOCAB), past)
        samples.append(feeds)
    return samples
