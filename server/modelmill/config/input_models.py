"""``input_model``: the model a workflow starts from (reference §2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from modelmill.config.common import StrictModel, by_kind

# Olive's registered model types; only the first four are run by ModelMill.
RUNNABLE_MODEL_TYPES = ("HfModel", "PyTorchModel", "ONNXModel", "DiffusersModel")
OTHER_MODEL_TYPES = ("DistributedHfModel", "DistributedOnnxModel", "CompositeModel", "OpenVINOModel", "QNNModel",
                     "QairtModel", "QairtPreparedModel", "TensorFlowModel")
MODEL_TYPES = RUNNABLE_MODEL_TYPES + OTHER_MODEL_TYPES

if TYPE_CHECKING:  # by_kind builds the runtime type; checkers see the plain union
    ModelPath = str | dict[str, Any]
else:
    ModelPath = by_kind(scalar=str, object=dict[str, Any])


class KvCacheConfig(StrictModel):
    ort_past_key_name: str = Field("past_key_values.<id>.key", description="Name pattern of past key inputs.")
    ort_past_value_name: str = Field("past_key_values.<id>.value", description="Name pattern of past value inputs.")
    ort_present_key_name: str = Field("present.<id>.key", description="Name pattern of present key outputs.")
    ort_present_value_name: str = Field("present.<id>.value", description="Name pattern of present value outputs.")
    num_hidden_layers: int | None = Field(None, description="Layers with a KV cache; read from the model if unset.")
    num_attention_heads: int | None = Field(None, description="Attention heads; read from the model if unset.")
    hidden_size: int | None = Field(None, description="Hidden size; read from the model if unset.")
    world_size: int = Field(1, description="Tensor-parallel ranks the heads are split over.")
    past_sequence_length: int | None = Field(None, description="Past length used for dummy inputs.")
    batch_size: int = Field(0, description="Batch size used for dummy inputs.")
    dtype: str = Field("float32", description="Data type of the KV cache tensors.")
    shared_kv: bool = Field(False, description="Share one buffer for past and present.")
    sequence_length_idx: int = Field(2, description="Axis of the sequence length in the cache tensors.")
    past_kv_dynamic_axis: dict[str, Any] | None = Field(None, description="Dynamic axes of past inputs.")
    present_kv_dynamic_axis: dict[str, Any] | None = Field(None, description="Dynamic axes of present outputs.")


class IoConfig(StrictModel):
    """Names, shapes and types of the model's inputs and outputs, for export and dummy inputs."""

    input_names: list[str] = Field(description="Model input names, in the order the model takes them.")
    output_names: list[str] = Field(description="Model output names.")
    input_shapes: list[list[Any]] | None = Field(None, description="One shape per input, for dummy inputs.")
    input_types: list[str] | None = Field(None, description="One dtype per input, e.g. int64 or float32.")
    output_shapes: list[list[Any]] | None = Field(None, description="One shape per output.")
    output_types: list[str] | None = Field(None, description="One dtype per output.")
    dynamic_axes: dict[str, dict[Any, str]] | None = Field(
        None, description="Dynamic dimensions per tensor: {name: {axis index: dim name}}.")
    dynamic_shapes: Any = Field(None, description="torch.export dynamic shapes (dynamo exporter).")
    string_to_int_dim_params: list[str] | None = Field(None, description="Dim params to turn into integers.")
    kv_cache: bool | KvCacheConfig | None = Field(
        None, description="Add KV cache inputs/outputs: true for the defaults, or an object to set them.")


class HfLoadKwargs(StrictModel):
    """Arguments for ``from_pretrained``; keys not listed here are passed through unchanged."""

    model_config = ConfigDict(extra="allow")

    torch_dtype: str | None = Field(None, description="Weight dtype to load in, e.g. float32, float16, bfloat16.")
    device_map: str | dict[str, Any] | None = Field(None, description="Where to place layers, e.g. 'auto' or 'cpu'.")
    max_memory: dict[str, Any] | None = Field(None, description="Memory limit per device for device_map.")
    quantization_method: str | None = Field(None, description="bitsandbytes or gptq quantization on load.")
    quantization_config: dict[str, Any] | None = Field(None, description="Settings for quantization_method.")
    trust_remote_code: bool | None = Field(
        None, description="Run the model repository's own Python code. Only enable it for repositories you trust.")
    extra_args: dict[str, Any] | None = Field(None, description="More keyword arguments for from_pretrained.")


class HfModel(StrictModel):
    """A Hugging Face transformers model: a local folder with config.json and weights."""

    type: Literal["HfModel"] = Field(description="Model type (case-insensitive in Olive).")
    model_path: ModelPath = Field(
        description="Local folder with config.json and weights, or `sample:smollm2` / `sample:minilm` for a "
                    "bundled sample. A hub id such as `org/name` only works where the hub can be reached.")
    task: str = Field("text-generation-with-past",
                      description="transformers task the model is loaded for, e.g. text-generation, "
                                  "text-generation-with-past, feature-extraction, text-classification.")
    load_kwargs: HfLoadKwargs | None = Field(None, description="How to load the weights (dtype, device map, ...).")
    io_config: by_kind(object=IoConfig, scalar=str) | None = Field(  # type: ignore[valid-type]
        None, description="Input/output description for export; inferred for most tasks.")
    adapter_path: str | None = Field(None, description="Folder with a PEFT (LoRA) adapter to load on top.")
    test_model_path: str | None = Field(None, description="A small stand-in model for quick test runs.")
    test_model_config: dict[str, Any] | None = Field(None, description="Config overrides for the test model.")
    model_attributes: dict[str, Any] | None = Field(
        None, description="Extra attributes passes may read; merged over the model's config.json.")


class PyTorchModel(StrictModel):
    """A plain PyTorch model: a saved file, or a loader function in a script."""

    type: Literal["PyTorchModel"] = Field(description="Model type (case-insensitive in Olive).")
    model_path: ModelPath | None = Field(None, description="Model file or folder; needed unless model_loader is set.")
    model_file_format: Literal["PyTorch.EntireModel", "PyTorch.StateDict", "PyTorch.TorchScript",
                               "PyTorch.SliceGPT", "PyTorch.MLflow"] = Field(
        "PyTorch.StateDict", description="How model_path was saved.")
    model_loader: str | None = Field(None, description="Function in model_script that returns the model.")
    model_script: str | None = Field(None, description="Python file that defines model_loader and friends.")
    script_dir: str | None = Field(None, description="Folder added to sys.path for model_script's imports.")
    io_config: by_kind(object=IoConfig, scalar=str) | None = Field(  # type: ignore[valid-type]
        None, description="Input/output description, or the name of a function in model_script returning it.")
    dummy_inputs_func: str | None = Field(None, description="Function in model_script that returns example inputs.")
    model_attributes: dict[str, Any] | None = Field(None, description="Extra attributes passes may read.")

    @model_validator(mode="after")
    def _needs_a_source(self) -> PyTorchModel:
        if self.model_path is None and self.model_loader is None:
            raise ValueError("PyTorchModel needs model_path or model_loader")
        return self


class ONNXModel(StrictModel):
    """An ONNX model: a .onnx file, or a folder holding one."""

    type: Literal["ONNXModel"] = Field(description="Model type (case-insensitive in Olive).")
    model_path: ModelPath = Field(description="The .onnx file, or the folder that holds it.")
    onnx_file_name: str | None = Field(None, description="File name inside model_path when it is a folder.")
    inference_settings: dict[str, Any] | None = Field(
        None, description="ONNX Runtime session options and execution providers for evaluation.")
    use_ort_extensions: bool = Field(False, description="Register onnxruntime-extensions custom ops.")
    external_initializers_file_name: str | None = Field(None, description="File with external initializers.")
    constant_inputs_file_name: str | None = Field(None, description="File with constant inputs.")
    model_attributes: dict[str, Any] | None = Field(None, description="Extra attributes passes may read.")


class DiffusersModel(StrictModel):
    """A diffusers pipeline (Stable Diffusion, SDXL, Flux): a local folder with model_index.json. ModelMill runs
    SDLoRA (`diffusion-lora`) on it."""

    type: Literal["DiffusersModel"] = Field(description="Model type (case-insensitive in Olive).")
    model_path: ModelPath = Field(description="Local pipeline folder saved with save_pretrained (model_index.json, "
                                              "unet/ or transformer/, vae/, text_encoder/, tokenizer/, scheduler/).")
    model_variant: Literal["auto", "sd", "sdxl", "sd3", "flux", "sana"] = Field(
        "auto", description="Pipeline family; auto reads it from the folder (unet/ or transformer/ config).")
    load_kwargs: dict[str, Any] | None = Field(None, description="Olive's from_pretrained arguments; ModelMill "
                                               "accepts and ignores them (training loads each component itself).")
    adapter_path: str | None = Field(None, description="A LoRA adapter for the pipeline (refused by SDLoRA, which "
                                     "trains a new one on the base).")
    model_attributes: dict[str, Any] | None = Field(None, description="Extra attributes passes may read.")


class OtherOliveModel(StrictModel):
    """A model type Olive knows but ModelMill does not run; its keys are not checked."""

    model_config = ConfigDict(extra="allow")

    type: Literal[OTHER_MODEL_TYPES] = Field(  # type: ignore[valid-type]
        description="Model type (case-insensitive in Olive).")


InputModel = Annotated[HfModel | PyTorchModel | ONNXModel | DiffusersModel | OtherOliveModel,
                       Field(discriminator="type")]

MODEL_KINDS = {"HfModel": "hf", "PyTorchModel": "pytorch", "ONNXModel": "onnx", "DiffusersModel": "diffusers"}
