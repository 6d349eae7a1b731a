"""The shared body of the rtn and gptq passes: load, plan, quantize, save, report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.quant.checkpoint import LoadedModel, QuantConfig, load_dtype, load_model, save_model
from modelmill.quant.plan import QuantPlan, plan
from modelmill.quant.weights import QuantizedWeight


@dataclass
class GptqOptions:
    damp_percent: float
    desc_act: bool | None
    data_config: dict[str, Any] | None
    max_samples: int
    seq_len: int


def run(model: ModelRef, fresh: QuantConfig, ctx: PassContext, trusted: bool, allow_quantized: bool,
        gptq: GptqOptions | None = None) -> ModelRef:
    started = time.perf_counter()
    ctx.progress(0.0, "loading the model")
    try:
        loaded = load_model(model.path, load_dtype(model.attributes, model.path), trusted)
        quant_plan = plan(loaded, fresh, allow_quantized)
    except ValueError as exc:
        raise PassError(str(exc), fix="start from a float Hugging Face model, or one an Olive/ModelMill rtn or gptq "
                        "pass wrote") from exc
    if not quant_plan.targets:
        ctx.warn("nothing left to quantize: every module this pass would quantize already is")
    _untie(loaded, quant_plan)
    if gptq is None:
        quantized = _round_to_nearest(loaded, quant_plan, ctx)
    else:
        quantized = _gptq(loaded, quant_plan, gptq, ctx)
    ctx.progress(0.97, "saving the quantized checkpoint")
    weight_bytes = save_model(loaded, quantized, quant_plan.config, ctx.output_dir)
    bits: dict[str, int] = {}
    for weight in {**loaded.locked, **quantized}.values():
        bits[str(weight.spec.bits)] = bits.get(str(weight.spec.bits), 0) + weight.qweight.shape[0] * weight.in_features
    ctx.report("quantization", {"algorithm": "gptq" if gptq else "rtn", "quantized_now": len(quantized),
                                "kept_from_input": len(loaded.locked), "weights_by_bits": bits,
                                "checkpoint_bytes": weight_bytes, "seconds": round(time.perf_counter() - started, 1),
                                "quantization_config": quant_plan.config.to_json()})
    ctx.log(f"quantized {len(quantized)} modules ({', '.join(f'{n:,} weights at {b} bits' for b, n in bits.items())}); "
            f"checkpoint {weight_bytes / 2**20:.1f} MiB")
    return ModelRef(kind="hf", path=ctx.output_dir, attributes=dict(model.attributes))


def _untie(loaded: LoadedModel, quant_plan: QuantPlan) -> None:
    """Quantizing a tied LM head or embedding quantizes that one only: give the LM head its own weight."""
    names = quant_plan.structure
    head = loaded.model.get_submodule(names.lm_head)
    embeds = loaded.model.get_submodule(names.embeds) if names.embeds else None
    if embeds is not None and head.weight is embeds.weight and (names.lm_head in quant_plan.targets
                                                               or names.embeds in quant_plan.targets):
        head.weight = torch.nn.Parameter(embeds.weight.detach().clone(), requires_grad=False)


def _check_cancel(ctx: PassContext) -> None:
    if ctx.cancel.is_set():
        raise RunCancelled()


def _round_to_nearest(loaded: LoadedModel, quant_plan: QuantPlan, ctx: PassContext) -> dict[str, QuantizedWeight]:
    quantized = {}
    total = max(len(quant_plan.targets), 1)
    for index, (name, spec) in enumerate(quant_plan.targets.items()):
        _check_cancel(ctx)
        if index % 8 == 0:
            ctx.progress(0.05 + 0.9 * index / total, f"rounding {name}")
        module = loaded.model.get_submodule(name)
        quantized[name] = QuantizedWeight.round_to_nearest(module.weight.detach(), spec, loaded.dtype)
    return quantized


def _gptq(loaded: LoadedModel, quant_plan: QuantPlan, options: GptqOptions,
          ctx: PassContext) -> dict[str, QuantizedWeight]:
    from modelmill.quant import calibration
    from modelmill.quant.gptq import gptq, observer
    from modelmill.quant.layerwise import quantize_layerwise

    names = quant_plan.structure
    if names.embeds in quant_plan.targets:
        raise PassError("gptq quantizes Linear layers only, not the embeddings", fix="quantize the embeddings with "
                        "a following rtn pass (embeds: true)")
    ctx.progress(0.02, "tokenizing calibration text")
    batches = calibration.batches(loaded.source, options.data_config, options.max_samples, options.seq_len)
    tokens = sum(int(batch["input_ids"].numel()) for batch in batches)
    source = "the data_config" if options.data_config else "Python's pydoc topics (local text)"
    ctx.log(f"GPTQ calibration: {len(batches)} samples, {tokens:,} tokens from {source}")
    hessians: dict[torch.nn.Module, Any] = {}
    quantized: dict[str, QuantizedWeight] = {}
    errors: dict[str, float] = {}

    def process(name: str, module: torch.nn.Module) -> None:
        hessian = hessians.pop(module, None)
        if hessian is None:
            raise PassError(f"{name} saw no calibration input", fix="check the calibration data")
        stored, dequantized = gptq(module.weight.data, hessian.matrix, quant_plan.targets[name],
                                   options.damp_percent, options.desc_act, scale_dtype=loaded.dtype)
        delta = module.weight.data.float() - dequantized
        errors[name] = float(torch.einsum("ij,jk,ik->", delta, hessian.matrix, delta))
        module.weight.data = dequantized.to(module.weight.dtype)
        quantized[name] = stored

    def step(index: int, total: int, message: str) -> None:
        _check_cancel(ctx)
        ctx.progress(0.05 + 0.9 * index / max(total, 1), f"GPTQ {message}")

    with torch.no_grad():
        quantize_layerwise(loaded.model, names, batches, set(quant_plan.targets), observer(hessians), process, step)
    missing = set(quant_plan.targets) - set(quantized)
    for name in missing:  # modules outside the decoder layers (other than the LM head): round to nearest
        quantized[name] = QuantizedWeight.round_to_nearest(loaded.model.get_submodule(name).weight.detach(),
                                                           quant_plan.targets[name], loaded.dtype)
    ctx.report("gptq_output_error", {"sum_over_modules": round(sum(errors.values()), 6), "modules": len(errors)})
    return quantized
