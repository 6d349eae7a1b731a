"""GPTQ (Frantar et al. 2022): quantize a Linear's columns one at a time, pushing each column's rounding error
onto the columns not yet quantized through the inverse Hessian of the layer's calibration inputs.

Olive 0.13's ``Gptq.process_module``, block size 128, with lazy batch updates; scales and zero points of a
group are found when the group's first column comes up (from the error-updated weights).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from modelmill.quant.weights import QuantizedWeight, QuantSpec, dequantize, find_qparams, quantize


class Hessian:
    """Running ``2/N * sum(x x^T)`` over a module's calibration inputs."""

    def __init__(self, columns: int) -> None:
        self.matrix = torch.zeros((columns, columns), dtype=torch.float32)
        self.count = 0

    def add(self, inputs: torch.Tensor) -> None:
        rows = inputs.reshape(-1, inputs.shape[-1]).float()
        batch = inputs.shape[0] if inputs.dim() > 2 else 1
        self.matrix *= self.count / (self.count + batch)
        self.count += batch
        scaled = math.sqrt(2 / self.count) * rows
        self.matrix += scaled.t() @ scaled


def observer(hessians: dict[torch.nn.Module, Hessian]) -> Any:
    """A forward hook that adds the module's inputs to its Hessian."""

    def hook(module: torch.nn.Module, inputs: tuple[Any, ...], _: Any) -> None:
        hessian = hessians.get(module)
        if hessian is None:
            hessian = hessians[module] = Hessian(module.in_features)
        hessian.add(inputs[0].detach())

    return hook


@torch.no_grad()
def gptq(weight: torch.Tensor, hessian: torch.Tensor, spec: QuantSpec, damp_percent: float = 0.01,
         act_order: bool | None = None, block: int = 128,
         scale_dtype: torch.dtype | None = None) -> tuple[QuantizedWeight, torch.Tensor]:
    """The quantized weight and its dequantized float (rows, in_features) from ``weight`` and its Hessian.

    ``scale_dtype``: the dtype the scales are stored in (default: the weight's)."""
    scale_dtype = scale_dtype or weight.dtype
    if act_order is None:
        act_order = spec.group_size == -1
    if act_order and spec.group_size != -1:
        raise ValueError("desc_act (act order) needs group_size -1")
    W = weight.detach().clone().float()
    H = hessian.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
    diagonal = torch.arange(columns)
    H[diagonal, diagonal] += damp_percent * torch.mean(torch.diag(H))
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    del H
    per_channel = QuantSpec(spec.bits, spec.symmetric, -1)
    group = spec.group_size if spec.group_size > 0 else columns
    Q = torch.zeros_like(W)
    scales_list, zeros_list = [], []
    scale = zero = None
    if spec.group_size == -1:
        scale, zero = find_qparams(W, per_channel, scale_dtype)
        scales_list, zeros_list = [scale], [zero]
    for start in range(0, columns, block):
        end = min(start + block, columns)
        W1 = W[:, start:end].clone()
        Err = torch.zeros_like(W1)
        Hinv1 = Hinv[start:end, start:end]
        for i in range(end - start):
            column = start + i
            if spec.group_size != -1 and column % group == 0:
                # as the reference implementation: from W, which holds this block's columns as they were
                # before the updates inside the block (equal to them where a group starts a block)
                scale, zero = find_qparams(W[:, column:column + group], per_channel, scale_dtype)
                scales_list.append(scale)
                zeros_list.append(zero)
            w = W1[:, i:i + 1]
            q = dequantize(quantize(w, scale, zero, per_channel), scale, zero, per_channel)
            Q[:, column] = q[:, 0]
            error = (w[:, 0] - q[:, 0]) / Hinv1[i, i]
            W1[:, i:] -= error.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)
            Err[:, i] = error
        W[:, end:] -= Err @ Hinv[start:end, end:]
    if perm is not None:
        Q = Q[:, torch.argsort(perm)]
    scales = torch.cat(scales_list, dim=1)
    zero_points = torch.cat(zeros_list, dim=1)
    codes = quantize(Q, scales, zero_points, spec)
    stored = QuantizedWeight.from_codes(codes, scales, zero_points, spec, scale_dtype)
    return stored, stored.dequantize()
