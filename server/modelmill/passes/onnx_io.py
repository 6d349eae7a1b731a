"""Shared helpers for passes that read and write ONNX folders."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

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
