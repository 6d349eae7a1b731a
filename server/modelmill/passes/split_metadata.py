"""Split assignments in an ONNX model's metadata, as Olive writes them (``metadata_props["split_assignments"]``:
``name=0;name=1``): CaptureSplitInfo decides them, OnnxConversion and ModelBuilder record them, SplitModel reads
them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

METADATA_KEY = "split_assignments"


def encode(assignments: dict[str, int]) -> str:
    """Olive's metadata form: ``name=0;name=1``."""
    return ";".join(f"{name}={index}" for name, index in assignments.items())


def decode(text: str) -> dict[str, int]:
    result: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        name, sep, index = item.partition("=")
        if not sep or not index.strip().lstrip("-").isdigit():
            raise ValueError(f"{item!r} is not name=index")
        result[name.strip()] = int(index)
    return result


def set_metadata(proto: "onnx.ModelProto", key: str, value: str) -> None:
    """Set one metadata_props entry, keeping the others."""
    for prop in proto.metadata_props:
        if prop.key == key:
            prop.value = value
            return
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, value


def write_split_metadata(onnx_file: Path, attributes: dict[str, Any]) -> None:
    """Record ``attributes["split_assignments"]`` in ``onnx_file``'s metadata (its weights stay where they are)."""
    assignments = attributes.get("split_assignments")
    if not assignments:
        return
    import onnx

    proto = onnx.load(str(onnx_file), load_external_data=False)
    set_metadata(proto, METADATA_KEY, encode(assignments))
    onnx.save(proto, str(onnx_file))
