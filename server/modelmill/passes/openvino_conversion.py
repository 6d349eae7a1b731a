"""OpenVINOConversion: an ONNX model, a Hugging Face folder or a saved PyTorch module → OpenVINO IR (openvino.convert_model)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import openvino_common as ovc
from modelmill.passes.base import Pass, PassParams


class OpenVINOConversionParams(ovc.UserScriptParams):
    function_params = ("example_input_func",)
    input_shapes: list[Any] | None = Field(
        None, description="Shapes of the model inputs, one list per input, e.g. [[1, 128], [1, 128]] (-1 or a "
                          "[min, max] pair for a dynamic dim). Applied when static is true; for a PyTorch model "
                          "they also shape the random example inputs. Olive's form naming a user function is not "
                          "run.")
    example_input_func: str | None = Field(
        None, description="Olive: a user function making example inputs. ModelMill runs no user code; for Hugging "
                          "Face models it makes token inputs itself.")
    compress_to_fp16: bool = Field(True, description="Store the IR's float weights as FP16 (computation stays as "
                                   "the device decides).")
    extra_configs: dict[str, Any] | None = Field(
        None, description="Extra keyword arguments for openvino.convert_model (e.g. {\"input\": ...}, "
                          "{\"output\": [...]}), as in OpenVINO's conversion parameters.")
    model_name: str = Field("ov_model", description="File name of the output IR: <model_name>.xml/.bin.")
    static: bool = Field(True, description="Give the inputs the fixed input_shapes (a static model); false keeps "
                         "the source's dynamic dims.")


class OpenVINOConversion(Pass):
    name = "OpenVINOConversion"
    description = ("Converts an ONNX model, a Hugging Face folder (traced with token inputs) or a saved PyTorch "
                   "module to OpenVINO IR with openvino.convert_model; weights are stored as FP16 by default. The "
                   "output is an openvino model folder (<model_name>.xml + .bin). Needs modelmill[openvino].")
    Params = OpenVINOConversionParams
    accepts = frozenset({"onnx", "hf", "pytorch"})
    required_packages = ("openvino",)
    install_hint = ovc.OPENVINO_EXTRA
    produces = "openvino"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OpenVINOConversionParams)
        params.refuse_scripts(self.name)
        self.require_packages()
        import openvino as ov

        if params.static and params.input_shapes is not None and not isinstance(params.input_shapes, list):
            raise PassError("input_shapes must be a list of shapes", fix="e.g. input_shapes: [[1, 128], [1, 128]]")
        args: dict[str, Any] = {}
        ctx.progress(0.1, f"loading the {model.kind} model")
        if model.kind == "onnx":
            source: Any = str(model.model_file)
        elif model.kind == "hf":
            source, args["example_input"] = _hf_module(model, params.input_shapes)
        else:
            source, args["example_input"] = _pytorch_module(model, params.input_shapes)
        if params.static and params.input_shapes:
            args["input"] = [tuple(shape) for shape in params.input_shapes]
        args.update(params.extra_configs or {})
        ctx.progress(0.3, "converting to OpenVINO IR")
        try:
            ov_model = ov.convert_model(source, **args)
        except Exception as exc:  # noqa: BLE001 - the converter raises many types
            raise PassError(f"{self.name} failed: {type(exc).__name__}: {exc}",
                            fix="check input_shapes (one shape per model input) and extra_configs") from exc
        ctx.progress(0.8, "saving the IR")
        ovc.save_ir(ov_model, ctx.output_dir, params.model_name, params.compress_to_fp16)
        _copy_configs(model, ctx)
        return ovc.openvino_ref(ctx.output_dir, model.attributes)


def _copy_configs(model: ModelRef, ctx: PassContext) -> None:
    """Configs and tokenizer files beside the source travel with the IR (evaluation reads vocab sizes from them)."""
    import shutil

    folder = model.path if model.path.is_dir() else model.path.parent
    for item in folder.iterdir():
        if item.is_file() and item.suffix in (".json", ".txt", ".model") and item.name not in (
                "entry.json", "modelmill_run.json") and not item.name.endswith(".index.json"):
            shutil.copy2(item, ctx.output_dir / item.name)


def _hf_module(model: ModelRef, input_shapes: list[Any] | None) -> tuple[Any, dict[str, Any]]:
    """The HF model in eval mode (plain outputs, no cache) and token example inputs."""
    import torch

    from modelmill.evaluate.runtime import forward_arg_names, load_hf
    from modelmill.remote_code import is_trusted

    hf_model = load_hf(model.path, trust_remote_code=is_trusted(model))
    hf_model.config.return_dict = False
    if hasattr(hf_model.config, "use_cache"):
        hf_model.config.use_cache = False
    shape = tuple(input_shapes[0]) if input_shapes else (1, 16)
    shape = tuple(d if isinstance(d, int) and d > 0 else 16 for d in shape)
    vocab = int(getattr(hf_model.config, "vocab_size", 100) or 100)
    ids = torch.randint(0, min(vocab, 1000), shape, dtype=torch.long)
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if "token_type_ids" in forward_arg_names(hf_model) and getattr(hf_model.config, "type_vocab_size", 0):
        example["token_type_ids"] = torch.zeros_like(ids)
    return hf_model, example


def _pytorch_module(model: ModelRef, input_shapes: list[Any] | None) -> tuple[Any, Any]:
    import torch

    if not input_shapes:
        raise PassError("OpenVINOConversion of a PyTorch model needs input_shapes for its example inputs",
                        fix="set input_shapes, e.g. [[1, 3, 224, 224]]")
    path = model.path if model.path.is_file() else next(iter(sorted(model.path.glob("*.pt"))), None)
    if path is None:
        raise PassError(f"{model.path} holds no saved PyTorch module (*.pt)", fix="torch.save the whole module")
    module = torch.load(str(path), weights_only=False)
    module.eval()
    return module, tuple(torch.rand(*shape) for shape in input_shapes)
