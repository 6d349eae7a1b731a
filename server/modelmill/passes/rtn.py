"""rtn: round-to-nearest INT4/INT8 weight quantization of a Hugging Face model (Olive 0.13's ``Rtn``).

Writes an Olive-format quantized checkpoint (``quantization_config.quant_method: olive``) that ModelBuilder
turns into MatMulNBits with these very weights. Can add to a checkpoint gptq wrote (e.g. an 8-bit LM head and
embeddings), keeping what is already quantized.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.passes.base import Pass, PassParams, searchable
from modelmill.remote_code import is_trusted, require_trust


class QuantizerParams(PassParams):
    """Olive's ``get_quantizer_config``: the parameters rtn and gptq share."""

    bits: Literal[2, 4, 8] = searchable(4, [4, 8], "Weight bits (Olive's PrecisionBits; 2, 4 or 8 can be stored).")
    group_size: int = searchable(128, [32, 64, 128], "Weights per quantization block along the input dimension "
                                 "(a power of two, at least 16), or -1 for one scale per output channel. ModelBuilder "
                                 "needs a block size its MatMulNBits supports (16..256).")
    sym: bool = Field(False, description="Symmetric quantization (no zero points). False stores a zero point per "
                      "block, as Olive does by default.")
    lm_head: bool = Field(False, description="Also quantize the language model head.")
    overrides: dict[str, dict[str, Any]] | None = Field(
        None, description="Per-module settings by module name, e.g. {\"lm_head\": {\"bits\": 8}}; keys bits, "
        "symmetric, group_size. They take precedence over the mixed precision info SelectiveMixedPrecision left on "
        "the model.")

    @model_validator(mode="after")
    def _check_group(self) -> "QuantizerParams":
        if self.group_size != -1 and (self.group_size < 16 or self.group_size & (self.group_size - 1)):
            raise ValueError(f"group_size must be -1 or a power of two of at least 16, not {self.group_size}")
        for name, override in (self.overrides or {}).items():
            unknown = set(override) - {"bits", "symmetric", "sym", "group_size"}
            if unknown:
                raise ValueError(f"overrides[{name!r}]: unknown keys {sorted(unknown)} (use bits, symmetric, "
                                 "group_size)")
        return self


class RtnParams(QuantizerParams):
    embeds: bool = Field(False, description="Also quantize the input embeddings (Olive 0.13's rtn). ModelBuilder "
                         "keeps them quantized (GatherBlockQuantized); GraphSurgeries TieWordEmbeddings then lets "
                         "an LM head quantized the same way read them, stored once.")


class Rtn(Pass):
    name = "Rtn"
    aliases = ("rtn", "olive.passes.pytorch.rtn.Rtn")
    description = ("Round-to-nearest INT4/INT8 block-wise weight quantization of a Hugging Face model's Linear "
                   "layers (and optionally its LM head and embeddings) in PyTorch. Writes a quantized checkpoint "
                   "in Olive's format, which ModelBuilder turns into MatMulNBits without quantizing again; modules "
                   "an earlier gptq/rtn pass quantized are kept as they are.")
    Params = RtnParams
    accepts = frozenset({"hf"})
    produces = "hf"
    supported_precisions = ("int4", "int8", "uint4", "uint8")
    cancel_grace_s: ClassVar[float] = 10.0

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, RtnParams)
        from modelmill.quant import run as quant_run
        from modelmill.quant.plan import fresh_config

        require_trust(model, self.name)
        fresh = fresh_config(params.bits, params.sym, params.group_size, params.lm_head, params.embeds,
                             params.overrides, model.attributes.get("mixed_precision_info"))
        return quant_run.run(model, fresh, ctx, is_trusted(model), allow_quantized=True)
