"""Block-wise weight quantization math: scales and zero points, quantize, dequantize, uint8 packing.

The same arithmetic as Olive 0.13's ``WeightQuantizer`` (unsigned codes, symmetric = zero point at the middle
code), so checkpoints match what Olive writes and what onnxruntime's MatMulNBits expects (its default zero point
for a symmetric block is 2^(bits-1)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class QuantSpec:
    """How one weight is quantized: bits, symmetric, group_size (-1 per output channel, >0 block size)."""

    bits: int = 4
    symmetric: bool = False
    group_size: int = 128

    def __post_init__(self) -> None:
        if self.bits not in (2, 4, 8):
            raise ValueError(f"only 2-, 4- and 8-bit weights are supported, not {self.bits}")
        if self.group_size != -1 and (self.group_size < 16 or self.group_size & (self.group_size - 1)):
            raise ValueError(f"group_size must be -1 or a power of two of at least 16, not {self.group_size}")

    @property
    def maxq(self) -> int:
        return (1 << self.bits) - 1

    @property
    def midq(self) -> int:
        return (self.maxq + 1) // 2

    def groups(self, in_features: int) -> int:
        size = self.group_size if self.group_size > 0 else in_features
        if in_features % size:
            raise ValueError(f"in_features {in_features} is not a multiple of group_size {size}")
        return in_features // size

    def fits(self, in_features: int) -> bool:
        return self.group_size == -1 or in_features % self.group_size == 0

    def as_dict(self) -> dict[str, int | bool]:
        return {"bits": self.bits, "symmetric": self.symmetric, "group_size": self.group_size}


def _grouped(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    return weight.reshape(weight.shape[0], spec.groups(weight.shape[1]), -1)


@torch.no_grad()
def find_qparams(weight: torch.Tensor, spec: QuantSpec,
                 scale_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scales (rows, groups) and int32 zero points (rows, groups) for a 2-D weight (rows, in_features).

    ``scale_dtype``: the dtype the scales will be stored in; they are rounded to it first, so that the codes are
    computed against the scales the checkpoint holds."""
    grouped = _grouped(weight.float(), spec)
    zero = torch.zeros(grouped.shape[:-1], dtype=grouped.dtype, device=grouped.device)
    low = torch.minimum(grouped.min(-1)[0], zero)
    high = torch.maximum(grouped.max(-1)[0], zero)
    if spec.symmetric:
        high = torch.maximum(low.abs(), high)
        low = torch.where(low < 0, -high, low)
    empty = (low == 0) & (high == 0)
    low[empty], high[empty] = -1.0, 1.0
    scales = (high - low) / spec.maxq
    if scale_dtype is not None and scale_dtype != scales.dtype:
        scales = scales.to(scale_dtype).float().clamp_min(torch.finfo(scale_dtype).tiny)
    if spec.symmetric:
        zero_points = torch.full_like(scales, spec.midq)
    else:
        zero_points = torch.round(-low / scales)
    return scales, zero_points.clamp(0, spec.maxq).to(torch.int32)


@torch.no_grad()
def quantize(weight: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Integer codes (int32, same shape as ``weight``) in [0, 2^bits - 1]."""
    grouped = _grouped(weight.float(), spec)
    codes = torch.round(grouped / scales.unsqueeze(-1) + zero_points.unsqueeze(-1)).clamp(0, spec.maxq)
    return codes.to(torch.int32).reshape(weight.shape)


@torch.no_grad()
def dequantize(codes: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    grouped = _grouped(codes, spec)
    return ((grouped - zero_points.unsqueeze(-1)) * scales.float().unsqueeze(-1)).reshape(codes.shape)


def fake_quantize(weight: torch.Tensor, spec: QuantSpec) -> torch.Tensor:
    """Round-to-nearest and back: the float weight the quantized one stands for."""
    scales, zero_points = find_qparams(weight, spec)
    return dequantize(quantize(weight, scales, zero_points, spec), scales, zero_points, spec).to(weight.dtype)


@torch.no_grad()
def pack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned codes along the last dimension into uint8 (element 0 in the low bits), Olive's layout."""
    per_byte = 8 // bits
    padding = (-codes.shape[-1]) % per_byte
    if padding:
        codes = torch.nn.functional.pad(codes, (0, padding))
    codes = codes.to(torch.uint8)
    packed = torch.zeros((codes.shape[0], codes.shape[1] // per_byte), dtype=torch.uint8, device=codes.device)
    for index in range(per_byte):
        packed |= codes[:, index::per_byte] << (bits * index)
    return packed


@torch.no_grad()
def unpack(packed: torch.Tensor, bits: int, columns: int) -> torch.Tensor:
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=packed.device)
    codes = torch.bitwise_right_shift(packed.unsqueeze(-1), shifts).reshape(packed.shape[0], -1)[:, :columns]
    return torch.bitwise_and(codes, (1 << bits) - 1).to(torch.int32)


@dataclass
class QuantizedWeight:
    """A weight as the checkpoint stores it (Olive format): packed codes, scales and, if asymmetric, zero points."""

    spec: QuantSpec
    qweight: torch.Tensor  # uint8 (rows, in_features * bits / 8)
    scales: torch.Tensor  # (rows, groups)
    qzeros: torch.Tensor | None  # uint8 (rows, ceil(groups * bits / 8)), None when symmetric
    in_features: int

    @classmethod
    def from_codes(cls, codes: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor, spec: QuantSpec,
                   dtype: torch.dtype = torch.float32) -> "QuantizedWeight":
        qzeros = None if spec.symmetric else pack(zero_points, spec.bits).contiguous()
        return cls(spec, pack(codes, spec.bits).contiguous(), scales.to(dtype).contiguous(), qzeros, codes.shape[1])

    @classmethod
    def round_to_nearest(cls, weight: torch.Tensor, spec: QuantSpec,
                         dtype: torch.dtype | None = None) -> "QuantizedWeight":
        """``dtype``: the scales' stored dtype (default: the weight's)."""
        dtype = dtype or weight.dtype
        scales, zero_points = find_qparams(weight, spec, dtype)
        return cls.from_codes(quantize(weight, scales, zero_points, spec), scales, zero_points, spec, dtype)

    def zero_points(self) -> torch.Tensor:
        if self.qzeros is None:
            return torch.full(self.scales.shape, self.spec.midq, dtype=torch.int32)
        return unpack(self.qzeros, self.spec.bits, self.scales.shape[1])

    def codes(self) -> torch.Tensor:
        return unpack(self.qweight, self.spec.bits, self.in_features)

    def dequantize(self) -> torch.Tensor:
        return dequantize(self.codes(), self.scales, self.zero_points(), self.spec)

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        found = {f"{prefix}.qweight": self.qweight, f"{prefix}.scales": self.scales}
        if self.qzeros is not None:
            found[f"{prefix}.qzeros"] = self.qzeros
        return found

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.qweight, self.scales, self.qzeros) if t is not None)
