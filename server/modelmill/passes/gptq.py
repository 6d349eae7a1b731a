"""gptq: GPTQ INT4/INT8 weight quantization of a Hugging Face model on local calibration text (Olive 0.13's
``Gptq``), written as an Olive-format checkpoint that ModelBuilder turns into MatMulNBits as it is."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.passes.base import Pass, PassParams
from modelmill.passes.rtn import QuantizerParams
from modelmill.remote_code import is_trusted, require_trust


class GptqParams(QuantizerParams):
    damp_percent: float = Field(0.01, gt=0, description="Dampening added to the Hessian's diagonal, as a fraction "
                                "of its mean.")
    desc_act: bool | None = Field(None, description="Quantize columns in order of decreasing activation (act "
                                  "order). Only with group_size -1; None = on for group_size -1, off otherwise.")
    data_config: str | dict[str, Any] | None = Field(
        None, description="Calibration data: the name of a data_configs entry or an inline one, read from local "
        "files (data_files / a local data_name, or sample:instructions). None: the English text that ships with "
        "Python (pydoc topics). Olive's default, wikitext from the hub, is never downloaded.")
    calibration_samples: int = Field(64, ge=1, description="ModelMill: calibration sequences when data_config does "
                                     "not set max_samples (Olive uses 128 of 2048 tokens; fewer keeps CPU runs short).")
    calibration_seq_len: int = Field(512, ge=8, description="ModelMill: tokens per calibration sequence when "
                                     "data_config does not set max_seq_len.")

    @model_validator(mode="after")
    def _check_act_order(self) -> "GptqParams":
        if self.desc_act and self.group_size != -1:
            raise ValueError("desc_act can only be true when group_size is -1")
        return self


class Gptq(Pass):
    name = "Gptq"
    aliases = ("gptq", "GPTQ", "olive.passes.pytorch.gptq.Gptq")
    description = ("GPTQ INT4/INT8 weight quantization of a Hugging Face model in PyTorch: layer by layer, each "
                   "Linear's rounding error is compensated through the Hessian of its inputs on calibration text "
                   "(local: a data_config's files, or the text that ships with Python). Writes an Olive-format "
                   "checkpoint that ModelBuilder turns into MatMulNBits without quantizing again.")
    Params = GptqParams
    accepts = frozenset({"hf"})
    produces = "hf"
    supported_precisions = ("int4", "int8", "uint4", "uint8")
    cancel_grace_s: ClassVar[float] = 30.0

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, GptqParams)
        from modelmill.engine.data import resolve_data_config
        from modelmill.quant import run as quant_run
        from modelmill.quant.plan import fresh_config

        require_trust(model, self.name)
        fresh = fresh_config(params.bits, params.sym, params.group_size, params.lm_head, False, params.overrides,
                             model.attributes.get("mixed_precision_info"))
        options = quant_run.GptqOptions(params.damp_percent, params.desc_act,
                                        resolve_data_config(params.data_config, ctx.data_configs),
                                        params.calibration_samples, params.calibration_seq_len)
        return quant_run.run(model, fresh, ctx, is_trusted(model), allow_quantized=False, gptq=options)
