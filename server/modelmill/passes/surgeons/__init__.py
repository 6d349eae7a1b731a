"""Graph surgeons for the GraphSurgeries pass: one function per Olive 0.13 surgeon, by name.

A surgeon is a function ``(model: onnx.ModelProto, **params) -> onnx.ModelProto`` registered with
:func:`surgeon`. Its keyword parameters are the surgery's keys in a config (Olive's names); parameters
without a default are required. The registry is filled by importing the modules in ``SURGEON_MODULES``,
which import onnx and numpy only inside the functions, so listing and validating surgeons stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

SURGEON_MODULES = (
    "modelmill.passes.surgeons.io",
    "modelmill.passes.surgeons.ops",
    "modelmill.passes.surgeons.norms",
    "modelmill.passes.surgeons.matmul",
    "modelmill.passes.surgeons.quant",
    "modelmill.passes.surgeons.llm",
    "modelmill.passes.surgeons.dla",
)


@dataclass(frozen=True)
class Surgeon:
    name: str
    """Olive's surgeon name (matched case-insensitively, as Olive does)."""
    func: Callable[..., Any]
    summary: str
    required: tuple[str, ...] = ()
    optional: dict[str, Any] = field(default_factory=dict)
    refused: str | None = None
    """Why ModelMill does not run this surgeon (with what to do instead), or None."""

    def apply(self, model: Any, spec: dict[str, Any]) -> Any:
        if self.refused:
            raise ValueError(f"surgeon {self.name} is not supported: {self.refused}")
        return self.func(model, **{key: value for key, value in spec.items() if key in self.parameters})

    @property
    def parameters(self) -> tuple[str, ...]:
        return (*self.required, *self.optional)


_REGISTRY: dict[str, Surgeon] = {}


def surgeon(name: str, summary: str, refused: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func`` as the surgeon ``name``; its keyword parameters after the model are the surgery's keys."""

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        params = list(inspect.signature(func).parameters.values())[1:]
        required = tuple(p.name for p in params if p.default is inspect.Parameter.empty)
        optional = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        _REGISTRY[name.lower()] = Surgeon(name, func, summary, required, optional, refused)
        return func

    return register


@lru_cache(maxsize=1)
def all_surgeons() -> dict[str, Surgeon]:
    """Lower-case name → surgeon, for every surgeon module."""
    for module in SURGEON_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def find_surgeon(name: str) -> Surgeon | None:
    return all_surgeons().get(name.lower())


def check_surgery(spec: Any) -> str | None:
    """What is wrong with one entry of ``surgeries`` (with the fix), or None."""
    import difflib

    if not isinstance(spec, dict) or not isinstance(spec.get("surgeon"), str) or not spec["surgeon"]:
        return "each surgery needs a \"surgeon\" key naming the surgeon, e.g. {\"surgeon\": \"RemoveShapes\"}"
    found = find_surgeon(spec["surgeon"])
    if found is None:
        names = [s.name for s in all_surgeons().values()]
        close = difflib.get_close_matches(spec["surgeon"], names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known surgeons: {', '.join(sorted(names))}"
        return f"unknown surgeon {spec['surgeon']!r}: {hint}"
    if found.refused:
        return f"surgeon {found.name} is not supported: {found.refused}"
    missing = [key for key in found.required if key not in spec]
    if missing:
        return f"surgeon {found.name} needs {', '.join(missing)}: add {'them' if len(missing) > 1 else 'it'} to " \
               f"the surgery"
    return None
