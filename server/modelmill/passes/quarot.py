"""QuaRot: offline rotation of a Hugging Face decoder LLM's weights (Olive 0.13's ``QuaRot``).

An orthogonal R1 (hidden size) turns the residual stream ``h`` into ``h @ R1``: the embeddings become ``E @ R1``,
every Linear that reads the stream ``W @ R1``, every Linear that writes it ``R1^T @ W``. RMSNorm commutes with an
orthogonal matrix once its scale is moved into the Linears after it, so those are fused first (norm weights become
ones) and the LM head gets its own weight. A per-layer R2 (head size) rotates v_proj's output and o_proj's input
head by head. The model computes the same function, but outlier channels are spread over all channels, which
makes the weights easier to quantize with a following rtn/gptq/ModelBuilder int4.

Orthogonal matrices: ``random`` = QR of a Gaussian matrix (signs fixed); ``hadamard`` = random signs times a
normalized Hadamard matrix of order n = K * 2^m, built here: Sylvester for powers of two, Paley I (K = q + 1,
q prime = 3 mod 4) or Paley II (K = 2(q + 1), q prime = 1 mod 4) for the factor K. With the same seed, both modes
draw their random numbers as Olive does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError, RunCancelled
from modelmill.passes.base import Pass, PassParams

if TYPE_CHECKING:
    import torch


class QuaRotParams(PassParams):
    seed: int = Field(0, description="Random seed of the rotations (the random matrix, or the Hadamard signs).")
    rotate_mode: Literal["hadamard", "random"] = Field(
        "hadamard", description="hadamard: random signs times a Hadamard matrix (the hidden and head sizes must be "
        "K * 2^m with a Hadamard matrix of order K: 1, 2, q+1 or 2(q+1) for a prime q); random: a random orthogonal "
        "matrix (any size).")


# --- model layouts ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Module names inside one decoder layer; ``qkv`` packs q, k and v in one Linear (Phi-3)."""

    attention_inputs: tuple[str, ...] = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")
    v_proj: str = "self_attn.v_proj"
    attention_output: str = "self_attn.o_proj"
    mlp_inputs: tuple[str, ...] = ("mlp.gate_proj", "mlp.up_proj")
    mlp_output: str = "mlp.down_proj"
    first_norm: str = "input_layernorm"
    second_norm: str = "post_attention_layernorm"
    packed_qkv: bool = False


_DEFAULT = Layout()
LAYOUTS: dict[str, Layout] = {
    "llama": _DEFAULT, "mistral": _DEFAULT, "qwen2": _DEFAULT, "qwen3": _DEFAULT,
    "phi3": Layout(attention_inputs=("self_attn.qkv_proj",), v_proj="self_attn.qkv_proj",
                   mlp_inputs=("mlp.gate_up_proj",), packed_qkv=True),
}
# Model types whose norms are LayerNorm (mean subtraction, bias): Olive refuses them with this reason.
LAYER_NORM_TYPES = ("gpt2", "opt", "bloom", "falcon", "gpt_neox", "gptj", "phi", "starcoder2", "olmo")
LAYER_NORM_REASON = "Model uses LayerNorm. Only RMSNorm fusion is supported."


def check_model_type(config: dict[str, Any]) -> Layout:
    model_type = str(config.get("model_type"))
    if model_type in LAYER_NORM_TYPES:
        raise PassError(f"QuaRot cannot rotate {model_type}: {LAYER_NORM_REASON}",
                        fix=f"use a model with RMSNorm ({', '.join(LAYOUTS)})")
    if model_type not in LAYOUTS:
        raise PassError(f"QuaRot does not support model type {model_type!r}; it rotates decoder LLMs with RMSNorm "
                        f"and the Llama layout: {', '.join(LAYOUTS)} (SmolLM2 is llama)",
                        fix="drop the QuaRot pass for this model")
    if config.get("quantization_config"):
        raise PassError("QuaRot rotates a float model, not a quantized checkpoint",
                        fix="put QuaRot before the rtn/gptq passes")
    return LAYOUTS[model_type]


# --- orthogonal matrices ------------------------------------------------------------------------------------

def _is_prime(n: int) -> bool:
    return n >= 2 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _paley_q(order: int) -> tuple[int, int] | None:
    """(construction, q) of a Paley Hadamard matrix of ``order``: (1, q) for q + 1, (2, q) for 2(q + 1)."""
    if order % 4:
        return None
    if _is_prime(order - 1) and (order - 1) % 4 == 3:
        return 1, order - 1
    if _is_prime(order // 2 - 1) and (order // 2 - 1) % 4 == 1:
        return 2, order // 2 - 1
    return None


def hadamard_factor(n: int) -> tuple[int, int] | None:
    """(K, 2^m) with n = K * 2^m and a Hadamard matrix of order K that ``hadamard`` builds (K smallest), or None."""
    power = n & -n  # the largest power of two dividing n
    while power >= 1:
        k = n // power
        if k in (1, 2) or _paley_q(k):
            return k, power
        power //= 2
    return None


def _jacobsthal(q: int) -> torch.Tensor:
    """Q[i, j] = chi(j - i), chi the quadratic character of GF(q) (0 at 0, 1 on nonzero squares, else -1)."""
    import torch

    squares = {x * x % q for x in range(1, q)}
    chi = torch.tensor([0.0] + [1.0 if a in squares else -1.0 for a in range(1, q)], dtype=torch.float64)
    index = torch.arange(q)
    return chi[(index[None, :] - index[:, None]) % q]


def hadamard_matrix(n: int) -> torch.Tensor:
    """A Hadamard matrix of order ``n`` (entries +-1, H H^T = n I), float64; ValueError when none is built here."""
    import torch

    found = hadamard_factor(n)
    if found is None:
        raise ValueError(f"no Hadamard matrix of order {n} is available: it must be K * 2^m with K = 1, 2, q + 1 "
                         "(q a prime = 3 mod 4) or 2(q + 1) (q a prime = 1 mod 4)")
    k, power = found
    h2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64)
    sylvester = torch.ones(1, 1, dtype=torch.float64)
    while sylvester.shape[0] < power:
        sylvester = torch.kron(sylvester, h2)
    if k == 1:
        return sylvester
    if k == 2:
        base = h2
    else:
        construction, q = _paley_q(k) or (0, 0)
        core = torch.zeros(q + 1, q + 1, dtype=torch.float64)
        core[0, 1:] = 1.0
        core[1:, 1:] = _jacobsthal(q)
        if construction == 1:  # Q antisymmetric: H = I + [[0, 1], [-1, Q]]
            core[1:, 0] = -1.0
            base = core + torch.eye(q + 1, dtype=torch.float64)
        else:  # Q symmetric: 0 -> [[1, -1], [-1, -1]], +-1 -> +-[[1, 1], [1, -1]]
            core[1:, 0] = 1.0
            zero_block = torch.tensor([[1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
            base = torch.kron(core, h2) + torch.kron(torch.eye(q + 1, dtype=torch.float64), zero_block)
    return torch.kron(base, sylvester)


def orthogonal_matrix(n: int, mode: str, generator: torch.Generator, what: str = "") -> torch.Tensor:
    """A random n x n orthogonal matrix (float64), drawn from ``generator`` as Olive draws it."""
    import torch

    if mode == "random":
        q, r = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=generator))
        return q * torch.sign(torch.diag(r)).unsqueeze(0)
    signs = torch.randint(0, 2, (n,), generator=generator).to(torch.float64) * 2 - 1
    try:
        return signs[:, None] * hadamard_matrix(n) / math.sqrt(n)
    except ValueError as exc:
        raise PassError(f"rotate_mode hadamard: {what or 'size'} {n}: {exc}",
                        fix="set rotate_mode: random (any size)") from exc


# --- the rotation -------------------------------------------------------------------------------------------

def _fuse_norm(norm: torch.nn.Module, linears: list[torch.nn.Linear]) -> None:
    """y = Linear(x * w) = Linear'(x) with W' = W diag(w); the norm's weight becomes ones."""
    import torch

    scale = norm.weight.detach().to(torch.float64)
    for linear in linears:
        linear.weight.data = (linear.weight.data.to(torch.float64) * scale).to(linear.weight.dtype)
    norm.weight.data = torch.ones_like(norm.weight.data)


def _rotate_inputs(weight: torch.Tensor, rotation: torch.Tensor, chunk: int = 8192) -> None:
    """W <- W @ R (head by head when R is smaller than W's input), in float64, rows in chunks (big tables)."""
    import torch

    rows, columns = weight.shape
    size = rotation.shape[0]
    for start in range(0, rows, chunk):
        part = weight[start:start + chunk].to(torch.float64)
        part = (part.reshape(part.shape[0], columns // size, size) @ rotation).reshape(part.shape[0], columns)
        weight[start:start + chunk] = part.to(weight.dtype)


def _rotate_outputs(weight: torch.Tensor, rotation: torch.Tensor) -> None:
    """W <- R^T @ W (head by head when R is smaller than W's output) for a weight or (as a column) a bias."""
    import torch

    matrix = weight if weight.dim() == 2 else weight[:, None]
    rows, columns = matrix.shape
    size = rotation.shape[0]
    rotated = rotation.T @ matrix.to(torch.float64).reshape(rows // size, size, columns)
    matrix.copy_(rotated.reshape(rows, columns).to(matrix.dtype))


def _rotate_output_linear(linear: torch.nn.Linear, rotation: torch.Tensor, rows: slice | None = None) -> None:
    rows = rows or slice(None)
    _rotate_outputs(linear.weight.data[rows], rotation)
    if linear.bias is not None:
        _rotate_outputs(linear.bias.data[rows], rotation)


def rotate(model: Any, layout: Layout, mode: str, seed: int, step: Callable[[float, str], None]) -> dict[str, Any]:
    """Rotate ``model`` in place; ``step(fraction, message)`` reports progress and may raise RunCancelled."""
    import torch

    config = model.config
    hidden = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    decoder = model.model
    layers = list(decoder.layers)
    if any("RMSNorm" not in type(m).__name__ for m in (decoder.norm, layers[0].get_submodule(layout.first_norm))):
        raise PassError(f"QuaRot cannot rotate {config.model_type}: {LAYER_NORM_REASON}",
                        fix="drop the QuaRot pass for this model")

    step(0.1, "untying the embeddings and fusing the RMSNorm weights into the Linears after them")
    if head.weight is embed.weight or head.weight.data_ptr() == embed.weight.data_ptr():
        head.weight = torch.nn.Parameter(embed.weight.detach().clone(), requires_grad=False)
    config.tie_word_embeddings = False
    for layer in layers:
        _fuse_norm(layer.get_submodule(layout.first_norm), [layer.get_submodule(n) for n in layout.attention_inputs])
        _fuse_norm(layer.get_submodule(layout.second_norm), [layer.get_submodule(n) for n in layout.mlp_inputs])
    _fuse_norm(decoder.norm, [head])

    generator = torch.Generator().manual_seed(seed)
    r1 = orthogonal_matrix(hidden, mode, generator, "hidden_size")
    step(0.15, f"rotating the embeddings and the LM head (R1: {hidden} x {hidden}, {mode})")
    _rotate_inputs(embed.weight.data, r1)
    _rotate_inputs(head.weight.data, r1)
    rotated_v = 0
    for index, layer in enumerate(layers):
        step(0.2 + 0.7 * index / len(layers), f"rotating layer {index + 1}/{len(layers)}")
        for name in (*layout.attention_inputs, *layout.mlp_inputs):
            _rotate_inputs(layer.get_submodule(name).weight.data, r1)
        v_proj = layer.get_submodule(layout.v_proj)
        if v_proj.bias is None:  # as Olive: no R2 where v_proj has a bias (e.g. Qwen2)
            r2 = orthogonal_matrix(head_dim, mode, generator, "head_dim")
            v_rows = slice((heads + kv_heads) * head_dim, None) if layout.packed_qkv else None
            _rotate_output_linear(v_proj, r2, v_rows)
            _rotate_inputs(layer.get_submodule(layout.attention_output).weight.data, r2)
            rotated_v += 1
        for name in (layout.attention_output, layout.mlp_output):
            _rotate_output_linear(layer.get_submodule(name), r1)
    return {"rotate_mode": mode, "seed": seed, "hidden_size": hidden, "head_dim": head_dim,
            "hadamard_orders": {"hidden_size": hadamard_factor(hidden), "head_dim": hadamard_factor(head_dim)}
            if mode == "hadamard" else None, "layers": len(layers), "layers_with_r2": rotated_v}


def save(model: Any, source: Path, out: Path) -> int:
    """The rotated model as a Hugging Face folder: one model.safetensors, config.json (untied), side files."""
    from safetensors.torch import save_file

    from modelmill.quant.checkpoint import copy_side_files

    tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    copy_side_files(source, out)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config["tie_word_embeddings"] = False
    (out / "config.json").write_text(json.dumps(config, indent=2, default=str))
    return sum(t.numel() * t.element_size() for t in tensors.values())


class QuaRot(Pass):
    name = "QuaRot"
    aliases = ("quarot", "olive.passes.pytorch.rotate.QuaRot")
    description = ("Rotates a Hugging Face decoder LLM's weights offline (QuaRot; Llama, SmolLM2, Mistral, Qwen2/3, "
                   "Phi-3): RMSNorm scales fused into the next Linears, embeddings untied, a Hadamard or random "
                   "orthogonal rotation of the hidden state and of each attention head's values. The model computes "
                   "the same outputs with outliers spread out, so a following rtn, gptq or ModelBuilder int4 loses "
                   "less. Writes a float Hugging Face folder.")
    Params = QuaRotParams
    accepts = frozenset({"hf"})
    produces = "hf"
    cancel_grace_s: ClassVar[float] = 10.0

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, QuaRotParams)
        import torch
        from transformers import AutoModelForCausalLM

        from modelmill.quant.checkpoint import load_dtype
        from modelmill.remote_code import is_trusted, require_trust

        require_trust(model, self.name)
        if model.attributes.get("adapter_path"):
            raise PassError("QuaRot rotates the base model's weights, which would no longer fit the LoRA adapter",
                            fix="rotate the base model before fine-tuning it, or merge the adapter first")
        config = json.loads((model.path / "config.json").read_text())
        layout = check_model_type(config)
        hidden = int(config.get("hidden_size") or 0)
        if params.rotate_mode == "hadamard" and hidden and not hadamard_factor(hidden):  # before loading the model
            orthogonal_matrix(hidden, "hadamard", torch.Generator(), "hidden_size")
        started = time.perf_counter()

        def step(fraction: float, message: str) -> None:
            if ctx.cancel.is_set():
                raise RunCancelled()
            ctx.progress(fraction, message)

        step(0.0, "loading the model")
        # load_kwargs.torch_dtype when given (the rotation itself runs in float64), else the checkpoint's dtype
        dtype = load_dtype(model.attributes, model.path) if model.attributes.get("torch_dtype") else "auto"
        loaded = AutoModelForCausalLM.from_pretrained(str(model.path), dtype=dtype,
                                                      trust_remote_code=is_trusted(model)).eval()
        with torch.no_grad():
            report = rotate(loaded, layout, params.rotate_mode, params.seed, step)
        step(0.95, "saving the rotated model")
        weight_bytes = save(loaded, model.path, ctx.output_dir)
        ctx.progress(1.0, "rotated model written")
        ctx.report("rotation", {**report, "checkpoint_bytes": weight_bytes,
                                "seconds": round(time.perf_counter() - started, 1)})
        ctx.log(f"QuaRot ({params.rotate_mode}, seed {params.seed}): rotated {report['layers']} layers "
                f"(R1 {report['hidden_size']}, R2 {report['head_dim']} in {report['layers_with_r2']} layers); "
                f"{weight_bytes / 2**20:.1f} MiB written")
        return ModelRef(kind="hf", path=ctx.output_dir, attributes=dict(model.attributes))
