"""OpenVINOQuantization: NNCF post-training quantization (int8 weights and activations) of an OpenVINO IR or ONNX model.

Calibration samples come from ModelMill's data configs (engine/data.py): a local_dataset of text, a dummy
container, or the built-in text when data_config is None.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.data import (
    InputSpec,
    calibration_feeds,
    onnx_input_specs,
    resolve_data_config,
)
from modelmill.engine.model import ModelKind, ModelRef
from modelmill.errors import PassError
from modelmill.passes import onnx_io
from modelmill.passes import openvino_common as ovc
from modelmill.passes.base import Pass, PassParams

ScopeType = Literal["names", "types", "patterns"]


class OpenVINOQuantizationParams(ovc.UserScriptParams):
    function_params = ("transform_fn", "validation_func")
    data_config: str | dict[str, Any] | None = Field(
        None, description="Calibration data: the name of an entry in data_configs, or an inline data config (a "
                          "local_dataset of text, or a DummyDataContainer). Olive requires it; ModelMill calibrates "
                          "on built-in text when it is None.")
    model_type: Literal["TRANSFORMER"] | None = Field(
        None, description="TRANSFORMER keeps transformer-specific ops (softmax, layer norm...) in float to preserve "
                          "accuracy of BERT-like models.")
    preset: Literal["PERFORMANCE", "MIXED"] = Field(
        "PERFORMANCE", description="PERFORMANCE: symmetric weights and activations; MIXED: asymmetric activations "
                                   "(more accurate for non-ReLU models).")
    ignored_scope: list[str] | list[list[str]] | None = Field(
        None, description="Layers left in float, by name, type or pattern (see ignored_scope_type); a list of lists "
                          "when ignored_scope_type is a list.")
    ignored_scope_type: ScopeType | list[ScopeType] | None = Field(
        None, description="What ignored_scope lists: names, types or patterns (or a list of them).")
    target_device: Literal["any", "cpu", "gpu", "cpu_spr", "npu"] = Field(
        "cpu", description="Device the quantization scheme is tuned for (nncf.TargetDevice).")
    transform_fn: str | None = Field(None, description="Olive: a user function on each data item. ModelMill runs "
                                     "no user code.")
    validation_func: str | None = Field(None, description="Olive: used only by OpenVINOQuantizationWithAccuracy; "
                                        "ModelMill runs no user code.")
    max_drop: float = Field(0.01, description="Olive compatibility: the accuracy-control drop limit, used only by "
                            "OpenVINOQuantizationWithAccuracy.")
    drop_type: Literal["ABSOLUTE", "RELATIVE"] = Field("ABSOLUTE", description="Olive compatibility: see max_drop.")
    extra_configs: list[dict[str, Any]] | None = Field(
        None, description="[{\"advanced_quantization_parameters\": {...}}]: nncf.AdvancedQuantizationParameters "
                          "fields, e.g. {\"smooth_quant_alpha\": 0.5}.")
    reuse_cache: bool = Field(False, description="Olive compatibility: ModelMill always writes a new folder.")
    max_calibration_samples: int = Field(100, ge=1, description="ModelMill: calibration samples taken from "
                                         "data_config (NNCF's subset_size).")
    calibration_sequence_length: int = Field(128, ge=1, description="ModelMill: tokens per calibration sample "
                                             "for dynamic sequence dims.")


class OpenVINOQuantization(Pass):
    name = "OpenVINOQuantization"
    description = ("Post-training int8 quantization with NNCF (nncf.quantize) of an OpenVINO IR (output: an IR, "
                   "<name>_quant.xml) or an ONNX model (output: ONNX with QuantizeLinear/DequantizeLinear pairs). "
                   "Activation ranges come from calibration data; model_type TRANSFORMER for BERT-like encoders. "
                   "Needs modelmill[openvino].")
    Params = OpenVINOQuantizationParams
    accepts = frozenset({"openvino", "onnx"})
    required_packages = ("openvino", "nncf")
    install_hint = ovc.OPENVINO_EXTRA
    supported_precisions = ("int8",)

    produces = "openvino"

    @classmethod
    def output_kind(cls, input_kind: ModelKind) -> ModelKind:
        return "onnx" if input_kind == "onnx" else "openvino"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OpenVINOQuantizationParams)
        params.refuse_scripts(self.name)
        self.require_packages()
        import nncf

        data_config = resolve_data_config(params.data_config, ctx.data_configs)
        ctx.progress(0.05, "loading the model")
        if model.kind == "openvino":
            loaded: Any = ovc.read_ir(model)
            specs = ov_input_specs(loaded)
        else:
            onnx_io.require_onnx(model, self.name)
            loaded = onnx_io.load(model)
            specs = onnx_input_specs(model.model_file)
        samples = calibration_feeds(model, data_config, specs, params.max_calibration_samples,
                                    sequence_length=params.calibration_sequence_length)
        ctx.log(f"calibrating on {len(samples)} samples")
        ctx.progress(0.2, f"quantizing with NNCF ({len(samples)} calibration samples)")
        try:
            quantized = nncf.quantize(loaded, nncf.Dataset(samples), subset_size=len(samples),
                                      advanced_parameters=_advanced(params), **nncf_options(params))
        except Exception as exc:  # noqa: BLE001 - NNCF raises many types
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="check the calibration data against the model inputs, or leave layers in float "
                                "with ignored_scope") from exc
        ctx.progress(0.9, "saving")
        if model.kind == "openvino":
            ovc.save_ir(quantized, ctx.output_dir, f"{ovc.model_name(model)}_quant", compress_to_fp16=False)
            ovc.copy_companions(model, ctx.output_dir)
            return ovc.openvino_ref(ctx.output_dir, {**model.attributes, "precision": "int8"})
        onnx_io.copy_companions(model, ctx.output_dir)
        file_name = model.onnx_file.replace(".onnx", "_quant.onnx")
        onnx_io.save(quantized, ctx.output_dir, file_name)
        return onnx_io.output_ref(model, ctx.output_dir, file_name, precision="int8")


def ov_input_specs(ov_model: Any) -> list[InputSpec]:
    """The IR's inputs as InputSpecs (numpy dtype names; dynamic dims as None)."""
    specs = []
    for i, port in enumerate(ov_model.inputs):
        try:
            name = port.get_any_name()
        except RuntimeError:
            name = f"input_{i}"
        dtype = port.get_element_type().to_dtype().name
        shape = tuple(None if dim.is_dynamic else dim.get_length() for dim in port.get_partial_shape())
        specs.append(InputSpec(name, dtype, shape))
    return specs


def nncf_options(params: OpenVINOQuantizationParams) -> dict[str, Any]:
    """model_type, preset, target_device and ignored_scope as nncf.quantize takes them (Olive's mapping)."""
    import nncf

    devices = {"cpu": nncf.TargetDevice.CPU, "gpu": nncf.TargetDevice.GPU, "cpu_spr": nncf.TargetDevice.CPU_SPR,
               "npu": nncf.TargetDevice.NPU, "any": nncf.TargetDevice.ANY}
    options: dict[str, Any] = {
        "model_type": nncf.ModelType.TRANSFORMER if params.model_type == "TRANSFORMER" else None,
        "preset": (nncf.QuantizationPreset.PERFORMANCE if params.preset == "PERFORMANCE"
                   else nncf.QuantizationPreset.MIXED),
        "target_device": devices[params.target_device],
    }
    scope = ignored_scope_kwargs(params.ignored_scope, params.ignored_scope_type)
    if scope:
        options["ignored_scope"] = nncf.IgnoredScope(**scope)
    return options


def ignored_scope_kwargs(scope: list[Any] | None, scope_type: Any) -> dict[str, list[str]]:
    """nncf.IgnoredScope keyword arguments, with Olive's checks on how the two parameters pair up."""
    if bool(scope) != bool(scope_type):
        raise PassError("ignored_scope and ignored_scope_type must be given together",
                        fix="e.g. ignored_scope: [\"Softmax\"], ignored_scope_type: types")
    if not scope:
        return {}
    if isinstance(scope_type, list):
        if not all(isinstance(item, list) for item in scope):
            raise PassError("when ignored_scope_type is a list, ignored_scope must be a list of lists",
                            fix="one list of names/types/patterns per entry of ignored_scope_type")
        if len(set(scope_type)) != len(scope_type) or len(scope) != len(scope_type):
            raise PassError("ignored_scope_type must list distinct kinds, one per entry of ignored_scope",
                            fix="e.g. ignored_scope_type: [names, types], ignored_scope: [[...], [...]]")
        return dict(zip(scope_type, scope))
    return {str(scope_type): list(scope)}


def _advanced(params: OpenVINOQuantizationParams) -> Any:
    import nncf

    for extra in params.extra_configs or []:
        if extra.get("advanced_quantization_parameters"):
            return nncf.AdvancedQuantizationParameters(**extra["advanced_quantization_parameters"])
    return None
