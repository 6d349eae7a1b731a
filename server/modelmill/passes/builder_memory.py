"""ModelBuilder's hooks into the onnxruntime-genai builder, and the Linux memory work behind its low peak.

The builder offers no hook between "layers read" and "quantize", so ModelMill patches ``Model.to_nbits``
for the length of one build: LoRA branch MatMuls stay float (``lora_branches_stay_float``), and the float
weights are streamed through a scratch file so that quantization never holds a second copy of the model
(``streamed_quantization``), dropping the checkpoint's resident pages (``madvise``) and trimming the heap
(``malloc_trim``) as it goes. Both patches are process-wide: hold ``BUILD_LOCK`` around a build.
"""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path
from typing import Any, Iterator

from modelmill.engine.context import PassContext


@contextlib.contextmanager
def lora_branches_stay_float(builder: Any) -> Iterator[None]:
    """Leave LoRA branch MatMuls (``.../lora_A/...``, ``.../lora_B/...``) out of weight quantization.

    They hold a few MB at most, quantizing them costs the adapter's precision, and float weights are what
    ExtractAdapters can move into a run-time adapter file. The node names are only known once the graph
    is built, so the exclusion is added right before the builder's ``to_nbits``.
    """
    model_cls = getattr(builder, "Model", None)
    inner = getattr(model_cls, "to_nbits", None)
    if not callable(inner):
        yield
        return

    def to_nbits(self: Any) -> Any:
        quant = getattr(self, "quant_attrs", None)
        graph = getattr(getattr(self, "model", None), "graph", None)
        if isinstance(quant, dict) and graph is not None:
            lora = [node.name for node in graph if "/lora_A/" in (node.name or "") or "/lora_B/" in (node.name or "")]
            quant["nodes_to_exclude"] = list(dict.fromkeys([*(quant.get("nodes_to_exclude") or []), *lora]))
        return inner(self)

    model_cls.to_nbits = to_nbits
    try:
        yield
    finally:
        model_cls.to_nbits = inner


# --- low-memory quantization ------------------------------------------------------------------------
#
# Where the builder's peak comes from (int4, SmolLM2-135M, 540 MB of fp32 weights, 1.75 GB peak RSS):
# ~450 MB of imports (torch, transformers, onnxruntime); the checkpoint, which transformers memory-maps, so
# every weight page read is resident; and `Model.to_nbits`, which serializes the whole float model into
# one ModelProto (`ir.to_proto`: a second copy of every weight) and quantizes from that copy. Reading the
# layers costs little; the peak is the quantization: imports + mapped checkpoint + full proto copy.
#
# The builder offers no low-memory option, so ModelMill streams the float weights instead: right before
# `to_nbits`, the weights it is about to quantize are written tensor by tensor to a scratch file and
# replaced by `ir.ExternalTensor` references, while the checkpoint pages already written are dropped. The
# proto then carries references only, and ORT's quantizer maps one weight at a time. The quantizer, its
# options and its output are the builder's own: the model comes out byte for byte the same.

# Set MODELMILL_BUILDER_STREAM_WEIGHTS=0 to quantize in memory exactly as the builder does by itself.
STREAM_ENV = "MODELMILL_BUILDER_STREAM_WEIGHTS"
# Float weights below this stay in memory (norm scales, biases): not worth a round trip through a file.
_STREAM_MIN_BYTES = 1 << 16
# Written bytes between two releases of the checkpoint's resident pages.
_RELEASE_EVERY_BYTES = 96 << 20
# Large tensors are written in slices of about this size (no full contiguous copy).
_WRITE_SLICE_BYTES = 16 << 20
# The builder's stdout is redirected process-wide, and the to_nbits hook below is process-wide too:
# one builder run at a time per process.
BUILD_LOCK = threading.Lock()


@contextlib.contextmanager
def streamed_quantization(builder: Any, ctx: PassContext, checkpoint: Path) -> Iterator[None]:
    """Hook the builder's ``Model.to_nbits`` for this build so that it quantizes from streamed weights.

    The builder makes its Model object inside ``create_model``; the class method is the one place to step in
    between "layers read" and "quantize". The hook only moves tensors out of memory and then calls the
    builder's own ``to_nbits``. Where the builder has no ``Model.to_nbits`` (renamed or reworked in an update)
    nothing is patched and the build runs exactly as the builder's own, with a warning in the run's log.
    """
    import os

    model_cls = getattr(builder, "Model", None)
    original = model_cls.__dict__.get("to_nbits") if isinstance(model_cls, type) else None
    if os.environ.get(STREAM_ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        yield
        return
    if not callable(original):
        ctx.log("ModelBuilder: this onnxruntime-genai builder has no Model.to_nbits, so weights cannot be "
                "streamed; quantizing in memory as the builder does (higher peak memory)", "warning")
        yield
        return
    import shutil
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="builder-weights-", dir=ctx.work_dir))
    calls = iter(range(1 << 30))

    def to_nbits(self: Any) -> Any:
        try:
            _stream_float_weights(self, scratch / f"float-weights-{next(calls)}.data", checkpoint, ctx)
        except Exception as exc:  # noqa: BLE001 - nothing was swapped before the file was complete
            ctx.log(f"ModelBuilder: streaming the float weights failed ({type(exc).__name__}: {exc}); "
                    "quantizing in memory", "warning")
        return original(self)

    to_nbits.__wrapped__ = original  # type: ignore[attr-defined]
    model_cls.to_nbits = to_nbits
    try:
        yield
    finally:
        model_cls.to_nbits = original
        shutil.rmtree(scratch, ignore_errors=True)


def _stream_float_weights(builder_model: Any, path: Path, checkpoint: Path, ctx: PassContext) -> None:
    """Move the float MatMul weights ``to_nbits`` will quantize into ``path``, as ExternalTensors."""
    import gc
    import shutil

    import onnx_ir as ir

    graph = getattr(getattr(builder_model, "model", None), "graph", None)
    quant = getattr(builder_model, "quant_attrs", None)
    if not isinstance(getattr(builder_model, "model", None), ir.Model) or not isinstance(quant, dict):
        return
    # Only ORT's default weight quantizer reads MatMul weights through ir.from_proto(...).numpy(), which
    # resolves an external reference; RTN/k_quant (and Gather quantization) read tensors their own way.
    if getattr(builder_model, "quantization_algo", "default") != "default":
        return
    if "MatMul" not in tuple(quant.get("op_types_to_quantize") or ()):
        return
    excluded = set(quant.get("nodes_to_exclude") or ())
    values = [value for value in graph.initializers.values() if _quantized_matmul_weight(ir, value, excluded)]
    if not values:
        return
    total = sum(value.const_value.nbytes for value in values)
    if shutil.disk_usage(path.parent).free < total + (256 << 20):
        ctx.log(f"ModelBuilder: not enough free disk in {path.parent} to stream {total / 2**20:.0f} MiB of weights; "
                "quantizing in memory", "info")
        return
    if _in_ram_filesystem(path.parent):  # the scratch file would take the same RAM, merely outside the RSS
        ctx.log(f"ModelBuilder: {path.parent} is in RAM (tmpfs); quantizing in memory", "info")
        return
    checkpoint_files = _checkpoint_files(checkpoint)
    ctx.log(f"ModelBuilder: streaming {len(values)} float weights ({total / 2**20:.0f} MiB) through {path.parent}",
            "debug")
    _release_checkpoint_pages(checkpoint_files)  # what reading the layers touched
    external = []
    offset = since_release = 0
    with open(path, "wb") as file:
        for value in values:
            tensor = value.const_value
            padding = -offset % 64
            file.write(b"\0" * padding)
            offset += padding
            length = _write_tensor_bytes(file, tensor)
            if length != tensor.nbytes:
                raise ValueError(f"{tensor.name}: wrote {length} bytes for a {tensor.nbytes}-byte tensor")
            # An absolute location with no base_dir: to_nbits round-trips the model through a ModelProto and
            # ORT's quantizer rebuilds each tensor with ir.from_proto(), which knows no base directory.
            external.append(ir.ExternalTensor(str(path.resolve()), offset, length, tensor.dtype,
                                              shape=tensor.shape, name=tensor.name))
            offset += length
            since_release += length
            if since_release >= _RELEASE_EVERY_BYTES or length >= _RELEASE_EVERY_BYTES // 4:
                _release_checkpoint_pages(checkpoint_files)
                since_release = 0
    for value, tensor in zip(values, external):
        value.const_value = tensor
    _detach_from_checkpoint(ir, graph)
    gc.collect()
    _release_checkpoint_pages(checkpoint_files)
    _malloc_trim()


def _write_tensor_bytes(file: Any, tensor: Any) -> int:
    """Write ``tensor.tobytes()`` to ``file``, a slice of rows at a time for large tensors.

    The builder's MatMul weights are transposed views of the checkpoint's; ``tobytes()`` would make one
    contiguous copy of the whole tensor (the LM head: vocab x hidden) next to its mapped pages.
    """
    import sys

    import numpy as np

    if tensor.nbytes <= _WRITE_SLICE_BYTES or sys.byteorder != "little" or tensor.dtype.bitwidth < 8:
        data = tensor.tobytes()
        file.write(data)
        return len(data)
    array = tensor.numpy()
    if array.ndim == 0 or array.dtype.byteorder == ">":
        data = tensor.tobytes()
        file.write(data)
        return len(data)
    step = max(1, _WRITE_SLICE_BYTES // max(1, array[0].nbytes))
    written = 0
    for start in range(0, array.shape[0], step):
        chunk = np.ascontiguousarray(array[start:start + step])  # rows of a C-order array: a slice of tobytes()
        file.write(chunk.data)
        written += chunk.nbytes
    return written


def _quantized_matmul_weight(ir: Any, value: Any, excluded: set[str]) -> bool:
    """Whether ``value`` is a float weight read only as the B input of MatMuls that to_nbits quantizes."""
    tensor = value.const_value
    if tensor is None or isinstance(tensor, ir.ExternalTensor) or value.is_graph_output():
        return False
    if tensor.dtype not in (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16):
        return False
    if tensor.nbytes < _STREAM_MIN_BYTES:
        return False
    uses = list(value.uses())
    return bool(uses) and all(use.node.op_type == "MatMul" and use.node.domain in ("", "ai.onnx") and use.idx == 1
                              and use.node.name not in excluded for use in uses)


def _detach_from_checkpoint(ir: Any, graph: Any) -> None:
    """Copy the initializers still backed by torch tensors (small: norm scales, ...) into plain arrays.

    Any torch parameter keeps the whole memory-mapped checkpoint alive; once none is left, it is unmapped.
    """
    import numpy as np

    try:
        from onnx_ir.tensor_adapters import TorchTensor
    except ImportError:  # an onnx_ir without the torch adapter cannot hold torch tensors either
        return
    for value in graph.initializers.values():
        tensor = value.const_value
        if isinstance(tensor, (ir.LazyTensor, TorchTensor)):
            try:
                copy = ir.Tensor(np.array(tensor.numpy(), copy=True), dtype=tensor.dtype, shape=tensor.shape,
                                 name=tensor.name, doc_string=tensor.doc_string)
            except Exception:  # noqa: BLE001 - an odd dtype stays as it is: correct, just not detached
                continue
            value.const_value = copy


def _checkpoint_files(checkpoint: Path) -> frozenset[str]:
    """Real paths of the files in the model folder (HF snapshot folders hold symlinks into blobs/)."""
    import os

    try:
        return frozenset(os.path.realpath(entry) for entry in checkpoint.rglob("*") if entry.is_file())
    except OSError:
        return frozenset()


def _in_ram_filesystem(folder: Path) -> bool:
    """Whether ``folder`` lives on tmpfs/ramfs (Linux /proc/self/mounts; False where unknown)."""
    import os

    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return False
    target = os.path.realpath(folder)
    best, best_type = "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, best_type = point, fields[2]
    return best_type in ("tmpfs", "ramfs")


def _release_checkpoint_pages(checkpoint_files: frozenset[str]) -> None:
    """Drop this process's resident pages of clean, private memory maps of the checkpoint's files.

    transformers memory-maps safetensors checkpoints copy-on-write (MAP_PRIVATE): each weight page read
    stays resident until the mapping goes, i.e. until the last torch parameter is freed. Once a weight has
    been written to the scratch file it is not needed again, so its pages can go now. MADV_DONTNEED on a
    private file mapping refills any page later read from the file, so it changes no data, provided no page
    was ever written: a mapping with a copy-on-write page (Anonymous / Private_Dirty > 0) is left alone.
    Linux only; elsewhere (or if /proc or madvise is unavailable) this does nothing.
    """
    import sys

    if not sys.platform.startswith("linux") or not checkpoint_files:
        return
    try:
        smaps = Path("/proc/self/smaps").read_text()
    except OSError:
        return
    mappings: list[list[int]] = []
    current: list[int] | None = None
    for line in smaps.splitlines():
        header = _SMAPS_HEADER.match(line)
        if header:
            start, end, perms, name = header.groups()
            current = None
            if perms.endswith("p") and name in checkpoint_files:
                current = [int(start, 16), int(end, 16), 0]
                mappings.append(current)
        elif current is not None and line.startswith(("Anonymous:", "Private_Dirty:")):
            current[2] += int(line.split()[1])
    if not mappings:
        return
    import ctypes

    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    for start, end, written_kib in mappings:
        if written_kib == 0:
            madvise(start, end - start, _MADV_DONTNEED)


_SMAPS_HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+\S+\s+\S+\s+\d+\s*(.*)$")
_MADV_DONTNEED = 4  # <asm-generic/mman-common.h>; only used on Linux


def _malloc_trim() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise); a no-op without glibc."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
