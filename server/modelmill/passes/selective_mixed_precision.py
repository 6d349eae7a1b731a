"""SelectiveMixedPrecision: choose which layers a following rtn/gptq keeps at higher precision (Olive 0.13)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes.base import Pass, PassParams, searchable

Algorithm = Literal["iqe", "iqe_relative", "k_quant_down", "k_quant_mixed", "k_quant_last", "kld_gradient", "snr",
                    "snr_relative"]


class SelectiveMixedPrecisionParams(PassParams):
    algorithm: Algorithm | None = searchable(
        None, ["k_quant_down", "k_quant_mixed", "k_quant_last"],
        "How layers are chosen: k_quant_last (LM head), k_quant_mixed / k_quant_down (also q/k/v and down_proj of "
        "llama.cpp's k-quant layer map), or by sensitivity: snr, snr_relative, iqe, iqe_relative (weights only), "
        "kld_gradient (KL divergence gradient on calibration text; the most accurate, the slowest).")
    bits: Literal[2, 4, 8] = Field(4, description="Default weight bits.")
    group_size: int = Field(128, description="Default group size (score-based algorithms).")
    sym: bool = Field(False, description="Symmetric default quantization (score-based algorithms).")
    high_bits: Literal[4, 8, 16] = Field(8, description="Bits of the layers kept at high precision.")
    high_group_size: int | None = Field(None, description="Group size of high-precision layers; None: group_size.")
    high_sym: bool | None = Field(None, description="Symmetric high-precision layers; None: sym.")
    ratio: float | None = Field(None, description="Fraction of Linear weights left at the default precision "
                                "(score-based algorithms; required there), e.g. 0.65.")
    kld_memory_mode: Literal["auto", "full", "multi_gpu", "low_memory", "offload"] = Field(
        "auto", description="Olive's memory modes of kld_gradient. ModelMill runs kld_gradient on the CPU, where "
        "every mode is Olive's 'full' (a float32 gradient accumulator per layer); recorded, not acted on.")
    calibration_samples: int = Field(16, ge=1, description="ModelMill: calibration sequences for kld_gradient "
                                     "(Olive uses 256 of 512 tokens; fewer keeps CPU runs short).")
    calibration_seq_len: int = Field(256, ge=8, description="ModelMill: tokens per kld_gradient calibration sequence.")

    @model_validator(mode="after")
    def _check(self) -> "SelectiveMixedPrecisionParams":
        if self.algorithm is None:
            raise ValueError("algorithm is required (k_quant_last, k_quant_mixed, k_quant_down, snr, snr_relative, "
                             "iqe, iqe_relative or kld_gradient)")
        if not self.algorithm.startswith("k_quant") and (self.ratio is None or not 0 < self.ratio < 1):
            raise ValueError(f"{self.algorithm} needs ratio, a fraction between 0 and 1 (e.g. 0.65)")
        return self


class SelectiveMixedPrecision(Pass):
    name = "SelectiveMixedPrecision"
    aliases = ("olive.passes.pytorch.selective_mixed_precision.SelectiveMixedPrecision",)
    description = ("Chooses which Linear layers a following rtn or gptq keeps at higher precision (e.g. 8-bit among "
                   "4-bit), by llama.cpp's k-quant layer map or by measured sensitivity (SNR, IQE, KL-divergence "
                   "gradient on local text). The model is passed on unchanged with mixed_precision_info "
                   "(also written to mixed_precision_info.json).")
    Params = SelectiveMixedPrecisionParams
    accepts = frozenset({"hf"})
    produces = "hf"
    cancel_grace_s: ClassVar[float] = 30.0

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, SelectiveMixedPrecisionParams)
        from modelmill.quant import mixed_precision as mp
        from modelmill.quant.checkpoint import load_dtype, load_model, structure
        from modelmill.quant.weights import QuantSpec
        from modelmill.remote_code import is_trusted, require_trust

        require_trust(model, self.name)
        algorithm = str(params.algorithm)
        ctx.progress(0.0, "loading the model")
        try:
            loaded = load_model(model.path, load_dtype(model.attributes, model.path), is_trusted(model))
        except ValueError as exc:
            raise PassError(str(exc), fix="run SelectiveMixedPrecision on the float model, before rtn/gptq") from exc
        if loaded.existing is not None:
            raise PassError("SelectiveMixedPrecision needs a float model, not a quantized checkpoint",
                            fix="put it before the rtn/gptq passes")
        names = structure(loaded.model)
        low_fraction = None
        if algorithm in mp.K_QUANT:
            default: dict[str, Any] = {"bits": params.bits}
            overrides = mp.k_quant_overrides(names, algorithm, params.high_bits)
        else:
            low = QuantSpec(params.bits, params.sym, params.group_size)
            high = QuantSpec(params.high_bits if params.high_bits != 16 else 8,
                             params.sym if params.high_sym is None else params.high_sym,
                             params.group_size if params.high_group_size is None else params.high_group_size)
            stats = self._stats(loaded, algorithm, low, high, params, ctx)
            overrides, low_fraction = mp.select(loaded.model, names, algorithm, stats, high, float(params.ratio or 0))
            for override in overrides.values():
                override["bits"] = params.high_bits
            default = low.as_dict()
        if getattr(loaded.model.config, "tie_word_embeddings", False) and names.lm_head in overrides and names.embeds:
            overrides[names.embeds] = dict(overrides[names.lm_head])
        info = {"default": default, "overrides": {name: overrides[name] for name in sorted(overrides, key=_natural)}}
        ctx.progress(0.95, "writing the model with its mixed precision info")
        _link_tree(model.path, ctx.output_dir)
        (ctx.output_dir / "mixed_precision_info.json").write_text(json.dumps(info, indent=2))
        ctx.report("mixed_precision", {"algorithm": algorithm, "high_precision_modules": len(overrides),
                                       "default_precision_fraction": None if low_fraction is None
                                       else round(low_fraction, 4)})
        ctx.log(f"{algorithm}: {len(overrides)} modules at {params.high_bits} bits"
                + (f"; {low_fraction:.1%} of Linear weights at {params.bits} bits" if low_fraction is not None else ""))
        return ModelRef(kind="hf", path=ctx.output_dir, attributes={**model.attributes, "mixed_precision_info": info})

    @staticmethod
    def _stats(loaded: Any, algorithm: str, low: Any, high: Any, params: SelectiveMixedPrecisionParams,
               ctx: PassContext) -> dict[str, dict[str, float]]:
        from modelmill.quant import calibration
        from modelmill.quant import mixed_precision as mp

        if algorithm != "kld_gradient":
            ctx.progress(0.1, f"scoring layers ({algorithm})")
            return mp.weight_stats(loaded.model, algorithm, low, high)
        batches = calibration.batches(loaded.source, None, params.calibration_samples, params.calibration_seq_len)
        ctx.log(f"kld_gradient on {len(batches)} samples of Python's pydoc topics (local text)")

        def step(index: int, total: int) -> None:
            if ctx.cancel.is_set():
                raise RunCancelled()
            ctx.progress(0.05 + 0.85 * index / total, f"KL-divergence gradients, sample {index + 1}/{total}")

        return mp.kld_stats(loaded.model, low, high, batches, step)


def _natural(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in name.split(".")]


def _link_tree(source: Path, out: Path) -> None:
    """The input folder's files in ``out``: hard links where the file system allows (no copy), else copies."""
    for item in source.iterdir():
        target = out / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
            continue
        try:
            os.link(item.resolve(), target)
        except OSError:
            shutil.copy2(item, target)
