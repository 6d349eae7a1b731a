"""Test helpers: pass contexts that record events, running passes, inspecting ONNX outputs."""

from __future__ import annotations

import collections
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from filelock import FileLock

from modelmill.engine.context import Accelerator, PassContext
from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef
from modelmill.passes.base import Pass


@dataclass
class RecordingBus(EventBus):
    """An EventBus that keeps every event it emits in ``events``."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.listeners.append(self.events.append)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["type"] == type_]


def make_context(tmp_path: Path, name: str, accelerator: Accelerator | None = None,
                 data_configs: dict[str, Any] | None = None) -> PassContext:
    """A PassContext with fresh output/work folders under ``tmp_path/name`` and a RecordingBus."""
    base = tmp_path / name
    output_dir, work_dir, cache_dir = base / "output", base / "work", base / "cache"
    for folder in (output_dir, work_dir, cache_dir):
        folder.mkdir(parents=True, exist_ok=True)
    return PassContext(pass_name=name, output_dir=output_dir, work_dir=work_dir, cache_dir=cache_dir,
                       bus=RecordingBus(run_id=f"test-{name}"), accelerator=accelerator or Accelerator(),
                       data_configs=data_configs or {})


def events(ctx: PassContext, type_: str) -> list[dict[str, Any]]:
    """Recorded events of one type."""
    assert isinstance(ctx.bus, RecordingBus)
    return ctx.bus.of_type(type_)


def run_pass(pass_cls: type[Pass], model: ModelRef, tmp_path: Path, name: str | None = None,
             ctx: PassContext | None = None, **params: Any) -> tuple[ModelRef, PassContext]:
    """Validate ``params`` with the pass's Params model and run the pass in a fresh context."""
    ctx = ctx or make_context(tmp_path, name or pass_cls.name)
    result = pass_cls().run(model, pass_cls.Params(**params), ctx)
    return result, ctx


def op_types(model: ModelRef) -> collections.Counter[str]:
    """Op type counts of the model's main graph."""
    import onnx

    proto = onnx.load(str(model.model_file), load_external_data=False)
    return collections.Counter(node.op_type for node in proto.graph.node)


def session(model: ModelRef) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(model.model_file), options, providers=["CPUExecutionProvider"])


def token_feeds(model: ModelRef, batch: int = 2, seq: int = 12, vocab: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    """Random token inputs for the inputs an OnnxConversion output takes."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(batch, seq), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    names = [i.name for i in session(model).get_inputs()]
    return {name: feeds[name] for name in names}


def run(model: ModelRef, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The model's first output."""
    return session(model).run(None, feeds)[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _shared_root(factory: pytest.TempPathFactory) -> Path:
    """The session's temp folder that every pytest-xdist worker of it shares (each has its own base below it)."""
    base = factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


def built_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]) -> Path:
    """The folder ``build(folder)`` filled, built once per test session even under pytest-xdist: the workers of one
    session share their base temp folder's parent, and a file lock makes the others wait for the first build
    (with loadfile each worker needs the tiny models at other times, so a wait is rare; a build is 5-20 CPU-s on
    a 2-core machine). A build that did not finish (its marker is missing) is redone."""
    root = _shared_root(factory)
    folder, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with FileLock(str(root / f"shared-{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


def built_model_once(factory: pytest.TempPathFactory, name: str, build: Callable[[Path], ModelRef]) -> ModelRef:
    """``built_once`` for a fixture that returns a ModelRef: the ref is kept beside the folder, as JSON."""
    def build_and_record(folder: Path) -> None:
        model = build(folder)
        (folder.parent / f"shared-{name}.json").write_text(json.dumps(model.to_json()))

    built_once(factory, name, build_and_record)
    spec = json.loads((_shared_root(factory) / f"shared-{name}.json").read_text())
    return ModelRef(kind=spec["kind"], path=Path(spec["path"]), onnx_file=spec["onnx_file"],
                    attributes=spec["attributes"])
