"""Which Linear layers keep higher precision (Olive 0.13's SelectiveMixedPrecision algorithms).

- ``k_quant_last``: the LM head; ``k_quant_mixed`` / ``k_quant_down``: also q/k/v (mixed) and the MLP's down
  projection in the first and last eighth of the layers and every third layer between (llama.cpp's k-quant map).
- Score-based (``snr``, ``snr_relative``, ``iqe``, ``iqe_relative``, ``kld_gradient``): every Linear gets a
  sensitivity score (lower = more sensitive), q/k/v of one block are scored together, and the most sensitive
  units are promoted until ``1 - ratio`` of the Linear weights are at the high precision.
"""

from __future__ import annotations

import math
from copy import deepcopy
from typing import Any, Callable

import torch

from modelmill.quant.checkpoint import Structure
from modelmill.quant.weights import QuantSpec, fake_quantize

EPS = 1e-12
K_QUANT = ("k_quant_down", "k_quant_mixed", "k_quant_last")
SCORED = ("snr", "snr_relative", "iqe", "iqe_relative", "kld_gradient")


def k_quant_overrides(names: Structure, algorithm: str, high_bits: int) -> dict[str, dict[str, Any]]:
    override = {"bits": high_bits}
    overrides = {names.lm_head: dict(override)}
    if algorithm == "k_quant_last":
        return overrides
    count = len(names.layers)
    for index, layer in enumerate(names.layers):
        if not (index < count / 8 or index >= 7 * count / 8 or (index - count // 8) % 3 == 2):
            continue
        prefix = f"{names.layers_name}.{index}."
        for name, module in layer.named_modules():
            if not isinstance(module, torch.nn.Linear):
                continue
            leaf = name.rsplit(".", 1)[-1]
            if leaf in ("down_proj", "fc2", "w2") or (algorithm == "k_quant_mixed" and leaf in ("q_proj", "k_proj",
                                                                                                 "v_proj", "qkv_proj")):
                overrides[prefix + name] = dict(override)
    return overrides


def _linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    return {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}


def weight_stats(model: torch.nn.Module, algorithm: str, low: QuantSpec, high: QuantSpec) -> dict[str, dict[str, float]]:
    """Per-module statistics of the SNR/IQE algorithms (weights only, no data)."""
    stats = {}
    for name, module in _linears(model).items():
        weight = module.weight.detach().float()
        low_error = weight - fake_quantize(weight, low)
        record = {"signal": float((weight * weight).sum()), "noise": float((low_error * low_error).sum()),
                  "iqe": float(low_error.pow(2).mean(-1).max())}
        if algorithm.endswith("relative"):
            high_error = weight - fake_quantize(weight, high)
            record.update(high_noise=float((high_error * high_error).sum()), high_iqe=float(high_error.pow(2).mean(-1).max()))
        stats[name] = record
    return stats


def kld_stats(model: Any, low: QuantSpec, high: QuantSpec, batches: list[dict[str, torch.Tensor]],
              step: Callable[[int, int], None]) -> dict[str, dict[str, float]]:
    """mlx-lm's KL-divergence gradient sensitivity: the gradient of KL(teacher || low-bit student) with respect to
    each low-bit weight, dotted with (low-bit weight - high-bit weight), averaged over the batches."""
    student = deepcopy(model).eval()
    for parameter in student.parameters():
        parameter.requires_grad = False
    layers = _linears(student)
    with torch.no_grad():
        for module in layers.values():
            module.weight.data = fake_quantize(module.weight.data, low)
            module.weight.requires_grad = True
    checkpointing = getattr(student, "activation_checkpointing_enable", None) or getattr(
        student, "gradient_checkpointing_enable", None)
    if checkpointing is not None:
        checkpointing()
        student.train()  # checkpointing only acts in training mode; these models have no dropout at inference
    grads = {name: torch.zeros_like(module.weight, dtype=torch.float32) for name, module in layers.items()}
    for index, batch in enumerate(batches):
        step(index, len(batches))
        with torch.no_grad():
            teacher = model(**batch, use_cache=False).logits
        logits = student(**batch, use_cache=False).logits
        loss = torch.nn.functional.kl_div(torch.log_softmax(logits.float(), -1), torch.softmax(teacher.float(), -1),
                                          reduction="none").sum(-1).mean()
        loss.backward()
        for name, module in layers.items():
            grads[name] += module.weight.grad.float()
            module.weight.grad = None
    originals = _linears(model)
    stats = {}
    with torch.no_grad():
        for name, module in layers.items():
            high_weight = fake_quantize(originals[name].weight.detach().float(), high)
            alignment = (grads[name] / len(batches) * (module.weight.detach().float() - high_weight)).sum()
            stats[name] = {"alignment": float(alignment)}
    return stats


def _combine(algorithm: str, records: list[dict[str, float]]) -> dict[str, float]:
    if algorithm.startswith("iqe"):
        return {key: max(r[key] for r in records) for key in records[0]}
    return {key: sum(r[key] for r in records) for key in records[0]}


def _snr(signal: float, noise: float) -> float:
    return 10 * math.log10(max(signal, EPS * EPS) / max(noise, EPS * EPS))


def _score(algorithm: str, record: dict[str, float], numel: int) -> float:
    """Lower = more sensitive."""
    if algorithm == "snr":
        return _snr(record["signal"], record["noise"])
    if algorithm == "snr_relative":
        return _snr(record["signal"], record["noise"]) - _snr(record["signal"], record["high_noise"])
    if algorithm == "iqe":
        return 1.0 / (record["iqe"] + EPS)
    if algorithm == "iqe_relative":
        return (1.0 / (record["iqe"] + EPS)) / (1.0 / (record["high_iqe"] + EPS))
    return -record["alignment"] / (max(numel, 1) / 1e6)


def select(model: torch.nn.Module, names: Structure, algorithm: str, stats: dict[str, dict[str, float]],
           high: QuantSpec, ratio: float) -> tuple[dict[str, dict[str, Any]], float]:
    """Overrides for the most sensitive units until (1 - ratio) of the weights are high precision, and the
    fraction of weights left at the default precision."""
    numels = {name: module.weight.numel() for name, module in _linears(model).items() if name in stats}
    units: dict[tuple[str, ...], tuple[int, float]] = {}
    grouped: set[str] = set()
    for group in names.qkv_groups:
        if all(name in stats for name in group):
            numel = sum(numels[name] for name in group)
            units[group] = (numel, _score(algorithm, _combine(algorithm, [stats[n] for n in group]), numel))
            grouped.update(group)
    for name in stats:
        if name not in grouped:
            units[(name,)] = (numels[name], _score(algorithm, stats[name], numels[name]))
    total = sum(numel for numel, _ in units.values())
    threshold = total * (1 - ratio)
    overrides: dict[str, dict[str, Any]] = {}
    promoted = 0
    for unit in sorted(units, key=lambda u: units[u][1]):
        promoted += units[unit][0]
        for name in unit:
            overrides[name] = high.as_dict()
        if promoted >= threshold:
            break
    return overrides, 1 - promoted / total
