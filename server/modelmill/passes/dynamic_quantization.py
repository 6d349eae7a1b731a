"""OnnxDynamicQuantization: onnxruntime.quantization.quantize_dynamic (int8 weights, activations quantized at run time).

Also holds the helpers the static quantization pass shares (pre-processing, node selection, saving).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes.base import OnnxOutputParams, Pass, PassParams, searchable

# Precision names → onnxruntime.quantization.QuantType member names.
QUANT_TYPES = {"int8": "QInt8", "uint8": "QUInt8", "int16": "QInt16", "uint16": "QUInt16"}


class QuantizationParams(OnnxOutputParams):
    """Parameters shared by the dynamic and static ORT quantization passes."""

    per_channel: bool = searchable(False, [False, True], "Quantize weights per output channel instead of per tensor: "
                                   "more accurate, slightly larger and slower on some hardware.")
    reduce_range: bool = searchable(False, [False, True], "Quantize weights to 7 bits. Can help accuracy on older x86 "
                                    "CPUs without VNNI, where 8-bit products may saturate.")
    quant_preprocess: bool = searchable(True, [True, False], "Run ORT's quantization pre-processing first (symbolic shape "
                                        "inference and graph optimization). Skipped with a warning when it fails, e.g. "
                                        "on very large models.")
    op_types_to_quantize: list[str] | None = Field(
        None, description="Op types to quantize, e.g. [\"MatMul\", \"Gather\"]. None quantizes every op type ORT "
                          "supports.")
    op_types_to_exclude: list[str] | None = Field(
        None, description="Op types to leave in float; their nodes are added to nodes_to_exclude.")
    nodes_to_quantize: list[str] | None = Field(
        None, description="Only quantize these nodes (by name). None quantizes all eligible nodes.")
    nodes_to_exclude: list[str] | None = Field(None, description="Node names to leave in float.")
    activation_symmetric: bool = Field(False, description="Quantize activations symmetrically around zero.")
    weight_symmetric: bool | None = Field(
        None, description="Quantize weights symmetrically. None lets ORT decide (symmetric for signed int8).")
    extra_options: dict[str, Any] | None = Field(
        None, description="Raw extra_options for ORT's quantizer (e.g. {\"MatMulConstBOnly\": true}); they override "
                          "the options this pass sets.")


class OnnxDynamicQuantizationParams(QuantizationParams):
    precision: Literal["int8", "uint8"] = searchable("int8", ["int8", "uint8"],
                                                     "Weight type: int8 (signed) or uint8.")


class OnnxDynamicQuantization(Pass):
    name = "OnnxDynamicQuantization"
    aliases = ()
    description = ("Quantizes weights of MatMul/Gather/Attention ops to int8 with onnxruntime.quantization.quantize_dynamic; "
                   "activations are quantized at run time (DynamicQuantizeLinear + MatMulInteger), so no calibration "
                   "data is needed. About 4x smaller weights and faster CPU inference.")
    Params = OnnxDynamicQuantizationParams
    accepts = frozenset({"onnx"})
    produces = "onnx"
    supported_precisions = ("int8", "uint8")
    supported_providers = ("CPUExecutionProvider",)

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OnnxDynamicQuantizationParams)
        onnx_io.require_onnx(model, self.name)
        with quiet_ort_logging(ctx):
            from onnxruntime.quantization import QuantType, quantize_dynamic

        source = preprocess(model, params.quant_preprocess, ctx)
        ctx.progress(0.3, f"quantizing weights to {params.precision}")
        target = ctx.work_dir / "quantized" / "model.onnx"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with quiet_ort_logging(ctx):
                quantize_dynamic(
                    str(source), str(target),
                    op_types_to_quantize=params.op_types_to_quantize,
                    per_channel=params.per_channel,
                    reduce_range=params.reduce_range,
                    weight_type=getattr(QuantType, QUANT_TYPES[params.precision]),
                    nodes_to_quantize=params.nodes_to_quantize,
                    nodes_to_exclude=excluded_nodes(source, params),
                    use_external_data_format=True,
                    extra_options=quant_extra_options(params),
                )
        except Exception as exc:  # noqa: BLE001 - ORT raises plain exceptions
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="exclude the failing nodes or op types (nodes_to_exclude, op_types_to_exclude), or "
                                "set quant_preprocess: false") from exc
        return save_quantized(model, target, ctx, precision=params.precision)


def preprocess(model: ModelRef, enabled: bool, ctx: PassContext) -> Path:
    """ORT's quant_pre_process into the work folder; the original model file if disabled or if it fails.

    Symbolic shape inference runs with auto_merge (it gives up on many exported transformers without it);
    when it still fails, pre-processing is retried without it.
    """
    if not enabled:
        return model.model_file
    with quiet_ort_logging(ctx):
        from onnxruntime.quantization.shape_inference import quant_pre_process

    ctx.progress(0.05, "pre-processing (shape inference, graph optimization)")
    out_dir = ctx.work_dir / "preprocessed"
    target = out_dir / "model.onnx"
    error: Exception | None = None
    for attempt in ({"auto_merge": True}, {"skip_symbolic_shape": True}):
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        try:
            # A failing symbolic shape inference saves a temp model into the working directory.
            with quiet_ort_logging(ctx), onnx_io.working_directory(ctx.work_dir):
                quant_pre_process(str(model.model_file), str(target), save_as_external_data=True,
                                  all_tensors_to_one_file=True, external_data_location="model.onnx.data", **attempt)
            return target
        except Exception as exc:  # noqa: BLE001 - shape inference fails on some contrib ops and huge models
            error = exc
    ctx.warn(f"quantization pre-processing failed, quantizing the model as it is: {type(error).__name__}: {error}")
    return model.model_file


def excluded_nodes(model_file: Path, params: QuantizationParams) -> list[str] | None:
    """nodes_to_exclude plus every node whose op type is in op_types_to_exclude."""
    excluded = list(params.nodes_to_exclude or [])
    if params.op_types_to_exclude:
        import onnx

        proto = onnx.load(str(model_file), load_external_data=False)
        types = set(params.op_types_to_exclude)
        excluded += [node.name for node in proto.graph.node if node.op_type in types and node.name]
    return excluded or None


def quant_extra_options(params: QuantizationParams, **defaults: Any) -> dict[str, Any]:
    """ORT extra_options from the symmetric flags; the user's extra_options win."""
    options: dict[str, Any] = {**defaults, "ActivationSymmetric": params.activation_symmetric}
    if params.weight_symmetric is not None:
        options["WeightSymmetric"] = params.weight_symmetric
    options.update(params.extra_options or {})
    return options


def save_quantized(model: ModelRef, quantized_file: Path, ctx: PassContext, **attributes: Any) -> ModelRef:
    """Copy a quantized model from the work folder into output_dir with its companions."""
    ctx.progress(0.9, "saving")
    proto = onnx_io.load(ModelRef(kind="onnx", path=quantized_file.parent, onnx_file=quantized_file.name))
    onnx_io.save(proto, ctx.output_dir)
    onnx_io.copy_companions(model, ctx.output_dir)
    ctx.progress(1.0, "quantized")
    return onnx_io.output_ref(model, ctx.output_dir, **attributes)


# Loggers of libraries that log (and on import configure logging) noisily during quantization.
NOISY_LOGGERS = ("onnxruntime", "neural_compressor")


class _Collector(logging.Handler):
    """Keeps messages instead of printing them; as a filter, also takes ORT's records logged on the root logger."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())

    def filter(self, record: logging.LogRecord) -> bool:
        path = record.pathname.replace("\\", "/")
        if "onnxruntime/" in path or "neural_compressor/" in path:
            self.emit(record)
            return False
        return True


@contextlib.contextmanager
def quiet_ort_logging(ctx: PassContext, quiet_stdout: bool = False) -> Iterator[None]:
    """Keep ORT's log output (hundreds of warnings on LLMs, INFO lines, progress prints) off the console.

    Import ORT quantization modules inside this context too: some call logging.basicConfig() on
    import, which would install a root handler for the rest of the process. A one-line summary of
    the warnings goes to ``ctx.log`` at debug level.
    """
    root = logging.getLogger()
    collector = _Collector()
    # With a handler present, basicConfig() (explicit, or inside logging.warning()) changes nothing.
    placeholder = logging.NullHandler()
    root.addHandler(placeholder)
    root.addFilter(collector)
    root_level = root.level
    saved = {}
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (logger.propagate, logger.level)
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        logger.addHandler(collector)
    try:
        with warnings.catch_warnings(), contextlib.ExitStack() as stack:
            # numpy overflow warnings from ranges of excluded tensors, torch warnings inside HQQ.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            if quiet_stdout:
                stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
            yield
    finally:
        for name, (propagate, level) in saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(collector)
            logger.propagate = propagate
            logger.setLevel(level)
        root.removeFilter(collector)
        root.removeHandler(placeholder)
        root.setLevel(root_level)
        if collector.messages:
            first = collector.messages[0].splitlines()[0][:200]
            ctx.log(f"onnxruntime logged {len(collector.messages)} warnings; first: {first}", level="debug")
