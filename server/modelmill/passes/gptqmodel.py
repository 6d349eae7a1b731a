"""GptqModel: GPTQ through the ``gptqmodel`` package (Olive 0.13's ``GptqModel``), a GPTQ-format checkpoint.

``gptqmodel`` is an optional extra (``pip install 'modelmill[gptqmodel]'``): it pins numpy and transformers
versions of its own, so it lives in a separate environment (docs/quantization.md says which versions run on CPU).
Without it the pass is refused at validation and before a run starts (``Pass.required_packages``).
ModelBuilder reads the output (``quant_method: gptq``) as it is and emits MatMulNBits with its codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes import onnx_io
from modelmill.passes.base import Pass, PassParams, searchable
from modelmill.remote_code import is_trusted, require_trust

GPTQMODEL_EXTRA = ("BUILD_CUDA_EXT=0 pip install --no-build-isolation 'modelmill[gptqmodel]' in a separate "
                   "environment with torch installed first (gptqmodel 6.0.3 pins numpy 2.2.6 and transformers "
                   "5.4-5.6; see docs/quantization.md)")


class GptqModelParams(PassParams):
    """Olive 0.13's GptqModel parameters (names, types, defaults), plus ModelMill's calibration size."""

    bits: Literal[2, 4, 8] = searchable(4, [4, 8], "Quantization bits (Olive's PrecisionBits: 2, 4 or 8 here).")
    group_size: int = searchable(-1, [-1, 32, 128], "Block size for quantization; -1: one group per row.")
    damp_percent: float = Field(0.05, gt=0, description="Damping factor for quantization.")
    damp_auto_increment: float = Field(0.01, ge=0, description="Damping increment when the Hessian is not "
                                       "positive definite.")
    static_groups: bool = Field(False, description="Use static groups for quantization.")
    true_sequential: bool = Field(True, description="Quantize the modules of a layer one after another.")
    desc_act: bool = Field(True, description="Reorder weights by activation importance (act order).")
    sym: bool = Field(True, description="Symmetric quantization.")
    mse: float = Field(0.0, ge=0, description="Mean square error search norm (0: off).")
    lm_head: bool = Field(False, description="Also quantize the LM head.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where gptqmodel quantizes: cpu or cuda.")
    dynamic: dict[str, dict[str, int | bool]] | None = Field(
        None, description="gptqmodel's per-module overrides (regex keys, e.g. {\"+:.*down_proj.*\": {\"bits\": 8}}).")
    rotation: Literal["hadamard", "random"] | None = Field(None, description="Rotation before quantization.")
    data_config: str | dict[str, Any] | None = Field(
        None, description="Calibration data: a data_configs entry or an inline one read from local files. None: "
        "the English text that ships with Python (pydoc topics). Olive's default, wikitext from the hub, is never "
        "downloaded.")
    calibration_samples: int = Field(64, ge=1, description="ModelMill: calibration sequences when data_config does "
                                     "not set max_samples.")
    calibration_seq_len: int = Field(512, ge=8, description="ModelMill: tokens per calibration sequence when "
                                     "data_config does not set max_seq_len.")

    @model_validator(mode="after")
    def _check_group(self) -> "GptqModelParams":
        if self.group_size <= 0 and self.group_size != -1:
            raise ValueError(f"group_size must be -1 or positive, not {self.group_size}")
        return self


class GptqModel(Pass):
    name = "GptqModel"
    aliases = ("olive.passes.pytorch.gptqmodel.GptqModel",)
    description = ("GPTQ weight quantization of a Hugging Face model with the gptqmodel package (optional extra "
                   "modelmill[gptqmodel]), calibrated on local text; writes a GPTQ-format checkpoint that "
                   "ModelBuilder turns into MatMulNBits without quantizing again.")
    Params = GptqModelParams
    accepts = frozenset({"hf"})
    produces = "hf"
    supported_precisions = ("int4", "int8", "uint4", "uint8")
    required_packages: ClassVar[tuple[str, ...]] = ("gptqmodel",)
    install_hint: ClassVar[str | None] = GPTQMODEL_EXTRA
    cancel_grace_s: ClassVar[float] = 30.0

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, GptqModelParams)
        self.require_packages()
        require_trust(model, self.name)
        if model.attributes.get("adapter_path"):
            raise PassError("GptqModel quantizes a base model, not one with a LoRA adapter on top",
                            fix="merge the adapter first, or quantize the base model and keep the adapter beside it")
        from modelmill.engine.data import resolve_data_config
        from modelmill.quant import calibration
        from modelmill.quant.checkpoint import load_dtype, read_quant_config

        if read_quant_config(model.path)[0] is not None:
            raise PassError("GptqModel needs a float model; this one is already quantized",
                            fix="run it on the float Hugging Face model")
        ctx.progress(0.0, "tokenizing calibration text")
        data = resolve_data_config(params.data_config, ctx.data_configs)
        batches = calibration.batches(model.path, data, params.calibration_samples, params.calibration_seq_len)
        dataset = [{"input_ids": b["input_ids"][0].tolist(), "attention_mask": b["attention_mask"][0].tolist()}
                   for b in batches]
        ctx.log(f"GptqModel calibration: {len(dataset)} samples from "
                f"{'the data_config' if data else 'Python pydoc topics (local text)'}")
        ctx.progress(0.05, "loading the model")
        dtype = load_dtype(model.attributes, model.path)
        # gptqmodel writes its offload folder and a log file into the working directory: keep them in the scratch
        # folder, not in the user's (process-wide, as the builder's hooks; passes in one process run one at a time)
        with onnx_io.working_directory(ctx.work_dir):  # contextlib.chdir is Python 3.11+
            quantized = _quantizer(model, params, dtype, is_trusted(model), ctx.work_dir / "offload")
            if ctx.cancel.is_set():
                raise RunCancelled()
            ctx.progress(0.1, "GPTQ (gptqmodel)")
            quantized.quantize(dataset)
            if ctx.cancel.is_set():
                raise RunCancelled()
            ctx.progress(0.95, "saving the GPTQ checkpoint")
            quantized.save_quantized(str(ctx.output_dir))
        _finish_config(ctx.output_dir / "config.json")
        ctx.report("quantization", {"algorithm": "gptqmodel", "bits": params.bits, "group_size": params.group_size,
                                    "sym": params.sym, "desc_act": params.desc_act, "samples": len(dataset)})
        return ModelRef(kind="hf", path=ctx.output_dir, attributes=dict(model.attributes))


def _quantizer(model: ModelRef, params: GptqModelParams, dtype: Any, trusted: bool, offload: Path) -> Any:
    """gptqmodel's wrapper for the architecture, through its public loader (``GPTQModel.load``: the model class
    from its MODEL_MAP, as Olive picks it, and the device/dtype normalization the constructor alone skips)."""
    from gptqmodel import GPTQModel, QuantizeConfig

    config = QuantizeConfig(bits=params.bits, group_size=params.group_size, sym=params.sym, mse=params.mse,
                            lm_head=params.lm_head, dynamic=params.dynamic, device=params.device,
                            rotation=params.rotation, static_groups=params.static_groups, desc_act=params.desc_act,
                            damp_percent=params.damp_percent, damp_auto_increment=params.damp_auto_increment,
                            true_sequential=params.true_sequential, offload_to_disk_path=str(offload))
    return GPTQModel.load(str(model.path), config, dtype=dtype, trust_remote_code=trusted)


def _finish_config(path: Any) -> None:
    """As Olive: exllama off, so that transformers can load the checkpoint on CPU."""
    config = json.loads(path.read_text())
    config.setdefault("quantization_config", {})["use_exllama"] = False
    path.write_text(json.dumps(config, indent=2))
