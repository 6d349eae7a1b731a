"""OpenVINO IRs in the evaluator, run by the OpenVINO runtime itself (never onnxruntime-openvino, which would
replace the ``onnxruntime`` module).

``ov_session`` wraps a compiled IR in the small part of ORT's InferenceSession API the metrics use
(``get_inputs``/``get_outputs`` with ORT type strings, ``run``), so latency, similarity and accuracy treat both
runtimes alike.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from modelmill.engine.model import ModelRef
from modelmill.evaluate.runtime import (
    EvaluationError,
    default_intra_op_threads,
    ort_session,
)

# numpy dtype names → ORT's type strings (what session_specs reads).
_NUMPY_TO_ORT = {"float32": "tensor(float)", "float16": "tensor(float16)", "float64": "tensor(double)",
                 "int64": "tensor(int64)", "int32": "tensor(int32)", "int8": "tensor(int8)", "uint8": "tensor(uint8)",
                 "bool": "tensor(bool)"}


@dataclass(frozen=True)
class PortMeta:
    """ORT's NodeArg, as far as the metrics read it."""

    name: str
    type: str
    shape: list[int | str | None]


class OVSession:
    """A compiled OpenVINO model with ORT's session interface."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self._inputs = [_meta(port, i, "input") for i, port in enumerate(compiled.inputs)]
        self._outputs = [_meta(port, i, "output") for i, port in enumerate(compiled.outputs)]

    def get_inputs(self) -> list[PortMeta]:
        return list(self._inputs)

    def get_outputs(self) -> list[PortMeta]:
        return list(self._outputs)

    def run(self, output_names: list[str] | None, feeds: dict[str, Any]) -> list[Any]:
        results = self.request.infer({name: value for name, value in feeds.items()})
        by_name = {meta.name: results[self.compiled.outputs[i]] for i, meta in enumerate(self._outputs)}
        names = output_names or [meta.name for meta in self._outputs]
        return [by_name[name].copy() for name in names]


def _meta(port: Any, index: int, prefix: str) -> PortMeta:
    try:
        name = port.get_any_name()
    except RuntimeError:
        name = f"{prefix}_{index}"
    dtype = port.get_element_type().to_dtype().name
    shape: list[int | str | None] = [None if dim.is_dynamic else dim.get_length() for dim in port.get_partial_shape()]
    return PortMeta(name, _NUMPY_TO_ORT.get(dtype, f"tensor({dtype})"), shape)


def ov_session(model: ModelRef, device: str = "CPU", num_threads: int | None = None) -> OVSession:
    """``model``'s IR compiled for ``device`` (optionally with an inference thread cap)."""
    if importlib.util.find_spec("openvino") is None:
        raise EvaluationError(f"{model.path} is an OpenVINO model, and OpenVINO is not installed here",
                              fix="pip install 'modelmill[openvino]'")
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {}
    threads = num_threads or default_intra_op_threads()
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        return OVSession(core.compile_model(str(model.model_file), device.upper(), config))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError and friends
        raise EvaluationError(f"OpenVINO could not compile {model.model_file}: {exc}",
                              fix="check that the folder holds the IR's .xml and .bin") from exc



def model_session(model: ModelRef, execution_provider: str = "CPUExecutionProvider",
                  intra_op_num_threads: int | None = None) -> Any:
    """An ORT InferenceSession for an ONNX model; for an OpenVINO IR, the OpenVINO runtime's compiled model behind
    the same interface."""
    if model.kind == "openvino":
        return ov_session(model, num_threads=intra_op_num_threads)
    return ort_session(model.model_file, execution_provider, intra_op_num_threads)
