"""Which modules a quantization pass quantizes, with which settings (Olive 0.13's ``prepare_model``).

Settings come, in increasing precedence, from the pass's defaults, the ``mixed_precision_info`` that
SelectiveMixedPrecision left on the model, and the pass's own ``overrides``. Modules an earlier pass already
quantized keep their stored settings. q/k/v projections of one attention block share one setting (the most
precise of theirs, or the one already stored), because the builder fuses them into one MatMul.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from modelmill.errors import PassError
from modelmill.quant.checkpoint import LoadedModel, QuantConfig, Structure, structure
from modelmill.quant.weights import QuantSpec


@dataclass
class QuantPlan:
    config: QuantConfig  # what the output checkpoint's quantization_config says
    targets: dict[str, QuantSpec]  # modules this pass quantizes now
    structure: Structure
    tie_again: bool  # embeddings were tied and both end up quantized the same way


def fresh_config(bits: int, sym: bool, group_size: int, lm_head: bool, embeds: bool,
                 overrides: dict[str, dict[str, Any]] | None, mixed_precision_info: dict[str, Any] | None) -> QuantConfig:
    values: dict[str, Any] = {"bits": bits, "symmetric": sym, "group_size": group_size}
    merged: dict[str, dict[str, Any]] = {}
    if mixed_precision_info:
        values.update({k: v for k, v in (mixed_precision_info.get("default") or {}).items() if v is not None
                       and k in values})
        merged = {name: dict(value) for name, value in (mixed_precision_info.get("overrides") or {}).items()}
    for name, override in (overrides or {}).items():  # the pass's own overrides win
        merged.setdefault(name, {}).update({_key(k): v for k, v in override.items() if v is not None})
    config = QuantConfig(QuantSpec(int(values["bits"]), bool(values["symmetric"]), int(values["group_size"])),
                         lm_head, embeds)
    for name, override in merged.items():
        config.overrides[name] = {_key(k): v for k, v in override.items() if v is not None}
        config.set_spec(name, config.spec_for(name))  # keep the keys that differ from the defaults only
    return config


def _key(key: str) -> str:
    return "symmetric" if key == "sym" else key


def _rank(spec: QuantSpec) -> tuple[int, int, int]:
    """More precise ranks higher: more bits, then smaller positive groups, then per-channel."""
    return (spec.bits, 2, -spec.group_size) if spec.group_size > 0 else (spec.bits, 1, 0)


def share_qkv(config: QuantConfig, names: Structure, locked: set[str]) -> None:
    for group in names.qkv_groups:
        specs = {name: config.spec_for(name) for name in group}
        if len(set(specs.values())) == 1:
            continue
        stored = {specs[name] for name in group if name in locked}
        if len(stored) > 1:
            continue  # already-quantized members disagree: nothing to do (the builder keeps them unfused)
        shared = next(iter(stored)) if stored else max(specs.values(), key=_rank)
        for name in group:
            if name not in locked:
                config.set_spec(name, shared)


def plan(loaded: LoadedModel, fresh: QuantConfig, allow_quantized: bool) -> QuantPlan:
    model = loaded.model
    names = structure(model)
    if loaded.existing is not None and not allow_quantized:
        raise ValueError("the model is already quantized; this pass quantizes float models only (rtn can add "
                         "to a quantized checkpoint)")
    locked = set(loaded.locked)
    share_qkv(fresh, names, locked)

    def wanted(name: str, module: torch.nn.Module) -> bool:
        if name in locked:
            return False
        if isinstance(module, torch.nn.Linear):
            return name != names.lm_head or fresh.lm_head
        return isinstance(module, torch.nn.Embedding) and fresh.embeds and name == names.embeds

    chosen = [name for name, module in model.named_modules() if wanted(name, module)]
    if loaded.existing is None:
        config = fresh
    else:
        config = QuantConfig(loaded.existing.default, loaded.existing.lm_head or fresh.lm_head,
                             loaded.existing.embeds or fresh.embeds, dict(loaded.existing.overrides))
        for name in chosen:
            config.set_spec(name, fresh.spec_for(name))
        share_qkv(config, names, locked)
    targets = {name: config.spec_for(name) for name in chosen}
    for name in list(config.overrides):  # keep overrides of modules that are (or now get) quantized only
        if name not in targets and name not in locked:
            config.overrides.pop(name)
    for name, spec in targets.items():
        in_features = model.get_submodule(name).weight.shape[1]
        if not spec.fits(in_features):
            raise PassError(f"{name}: {in_features} input features are not a multiple of group_size "
                            f"{spec.group_size}", fix="use a group_size that divides every input dimension of the "
                            "model (e.g. 64 or 32), or -1 for one scale per output channel", where="group_size")
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    every = {**{n: w.spec for n, w in loaded.locked.items()}, **targets}
    tie_again = (tied and names.lm_head in every and names.embeds in every
                 and every[names.lm_head] == every[names.embeds])
    config.tie_word_embeddings = tie_again
    return QuantPlan(config, targets, names, tie_again)
