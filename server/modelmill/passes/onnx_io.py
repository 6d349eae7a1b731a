"""Shared helpers for passes that read and write ONNX folders."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

from modelmill.engine.model import ModelRef
from modelmill.errors import PassError

if TYPE_CHECKING:
    import onnx

# Models above this size keep their weights in a side file (protobuf caps a file at 2 GB).
EXTERNAL_DATA_THRESHOLD = 1024


def require_onnx(model: ModelRef, pass_name: str) -> None:
    if model.kind != "onnx":
        raise PassError(
            f"{pass_name} needs an ONNX model but got a {model.kind} model at {model.path}",
            fix="put a conversion pass (OnnxConversion or ModelBuilder) before it",
        )
    if not model.model_file.exists():
        raise PassError(f"{pass_name}: ONNX file {model.model_file} does not exist",
                        fix="check the model path (an ONNX model is a .onnx file or a folder holding one)")
    problem = onnx_file_problem(model.model_file)
    if problem is not None:
        fix = ("the file is incomplete (an interrupted download, copy or export?): download or export it again"
               if "truncated" in problem or "empty" in problem else "point model_path at an .onnx model file")
        raise PassError(f"{pass_name}: ONNX file {model.model_file} {problem}", fix=fix)


def onnx_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a whole ONNX ModelProto, or None. Reads only the top-level protobuf field
    headers (a dozen; the graph's bytes are skipped with a seek), so it is cheap even for a 2 GB file."""
    size = path.stat().st_size
    if size == 0:
        return "is empty"
    offset = 0
    with path.open("rb") as handle:
        while offset < size:
            handle.seek(offset)
            key, offset = _varint(handle, offset)
            wire = (key or 0) & 7
            if key is not None and (key >> 3 == 0 or wire not in (0, 1, 2, 5)):
                return "is not an ONNX model (its bytes are not a protobuf ModelProto)"
            if key is not None and wire == 0:
                key, offset = _varint(handle, offset)
            elif key is not None and wire == 2:
                length, offset = _varint(handle, offset)
                offset += length or 0
                key = length
            elif key is not None:
                offset += 8 if wire == 1 else 4
            if key is None or offset > size:
                return f"is truncated: it ends at byte {size:,}, inside a field that runs to byte {offset:,}"
    return None


def _varint(handle: BinaryIO, offset: int) -> tuple[int | None, int]:
    """A protobuf varint at the handle's position: (value or None at end of file, the offset after it)."""
    value = 0
    for shift in range(0, 70, 7):
        byte = handle.read(1)
        if not byte:
            return None, offset
        offset += 1
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value, offset
    return None, offset


def load(model: ModelRef, load_external_data: bool = True) -> "onnx.ModelProto":
    import onnx

    return onnx.load(str(model.model_file), load_external_data=load_external_data)


def save(proto: "onnx.ModelProto", out_dir: Path, file_name: str = "model.onnx") -> Path:
    """Save with all weights in one ``<file_name>.data`` side file, as ORT GenAI expects."""
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / file_name
    data_name = file_name + ".data"
    (out_dir / data_name).unlink(missing_ok=True)
    onnx.save_model(proto, str(target), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data_name, size_threshold=EXTERNAL_DATA_THRESHOLD)
    return target


def copy_companions(src: ModelRef, out_dir: Path) -> None:
    """Copy everything but the ONNX file and its external data (tokenizer, genai_config, ...)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # ModelMill's own bookkeeping files describe the input folder, not the output.
    skip = {src.onnx_file, src.onnx_file + ".data", src.onnx_file + "_data", "entry.json", "modelmill_run.json"}
    for item in src.path.iterdir():
        if item.name in skip or item.suffix == ".onnx" or item.name.endswith(".onnx.data"):
            continue
        dest = out_dir / item.name
        if item.is_dir():
            shutil.copytree(item, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest)


def output_ref(src: ModelRef, out_dir: Path, file_name: str = "model.onnx", **attributes: object) -> ModelRef:
    return ModelRef(kind="onnx", path=out_dir, onnx_file=file_name, attributes={**src.attributes, **attributes})


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """Run inside ``folder``: some ORT tools drop temporary files (shape inference, UUID .data) in the cwd."""
    previous = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)
