"""Every Olive pass, from the generated catalogue (olive_passes.json, written by scripts/gen_olive_catalog.py).

ModelMill's own pass classes stay the source of truth for the passes it runs; the catalogue covers the rest:
their names (resolved as Olive resolves them), their parameters as pydantic models built from Olive's types
(so values are checked with the same coercions Olive's pydantic applies), the model kinds they take and what
they need to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

CATALOG_FILE = Path(__file__).with_name("olive_passes.json")

# Model kinds ModelMill's configs can name, and the families Olive's handlers fall into.
_FAMILY = {"hf": "torch", "pytorch": "torch", "onnx": "onnx"}


@dataclass(frozen=True)
class OlivePass:
    """One Olive pass as the catalogue describes it."""

    name: str
    info: dict[str, Any]

    @property
    def description(self) -> str:
        return str(self.info.get("description") or f"Olive pass {self.name}.")

    @property
    def params(self) -> dict[str, dict[str, Any]]:
        return self.info.get("params", {})

    @property
    def accepts(self) -> list[str]:
        return list(self.info.get("accepts", ["any"]))

    def needs(self) -> str:
        """What running it takes, in a few words (for pass-not-runnable)."""
        packages = self.info.get("packages") or []
        accelerators = [a for a in self.info.get("accelerators", []) if a != "*"]
        parts = []
        if packages:
            parts.append(f"the package{'s' if len(packages) > 1 else ''} {', '.join(packages)}")
        if self.info.get("run_on_target"):
            parts.append("to run on the target system")
        if accelerators and set(accelerators) != {"cpu", "gpu", "npu"}:
            parts.append(f"a {'/'.join(accelerators)} accelerator")
        return " and ".join(parts) or "Olive itself"

    def takes(self, kind: str) -> bool | None:
        """Whether the pass takes a model of ``kind`` (hf/pytorch/onnx); None when the catalogue cannot tell."""
        if "any" in self.accepts or kind not in _FAMILY:
            return None
        families = {_FAMILY.get(k, k) for k in self.accepts}
        if not families & set(_FAMILY.values()):
            return None  # composite, openvino, qnn...: handlers ModelMill's configs do not name
        return _FAMILY[kind] in families


@lru_cache(maxsize=1)
def catalog() -> dict[str, Any]:
    return json.loads(CATALOG_FILE.read_text(encoding="utf-8"))


def olive_version() -> str:
    return str(catalog().get("olive_version", "?"))


@lru_cache(maxsize=1)
def _index() -> dict[str, OlivePass]:
    return {name.lower(): OlivePass(name, info) for name, info in catalog()["passes"].items()}


def all_olive_passes() -> dict[str, OlivePass]:
    return {p.name: p for p in _index().values()}


def find_olive_pass(type_name: str) -> OlivePass | None:
    """Olive's lookup: case-insensitive; ``a.b.Name`` resolves by its last component."""
    return _index().get(type_name.rpartition(".")[2].lower())


# ------------------------------------------------------------------ parameter models


class CatalogParams(BaseModel):
    """Parameters of a catalogue pass; unknown keys are left to the caller (Olive ignores them with a warning)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    search_values: ClassVar[dict[str, list[Any]]] = {}

    @classmethod
    def searchable_fields(cls) -> dict[str, list[Any]]:
        return dict(cls.search_values)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def python_type(schema: dict[str, Any]) -> Any:
    """A type annotation that accepts what Olive's pydantic accepts for ``schema``."""
    kind = schema.get("kind")
    if kind in ("bool", "int", "float", "str"):
        return {"bool": bool, "int": int, "float": float, "str": str}[kind]
    if kind == "path":
        return str
    if kind == "null":
        return type(None)
    if kind == "dict":
        return dict[str, Any]
    if kind == "list":
        return list[python_type(schema.get("items") or {"kind": "any"})]  # type: ignore[misc]
    if kind == "enum" and schema.get("values"):
        literal = Literal[tuple(schema["values"])]  # type: ignore[valid-type]
        return Annotated[literal, BeforeValidator(_lower)] if schema.get("case_insensitive") else literal
    if kind == "union":
        return Union[tuple(python_type(item) for item in schema["anyOf"])]  # type: ignore[return-value]
    return Any


@lru_cache(maxsize=None)
def params_model(name: str) -> type[CatalogParams]:
    """The pydantic model for one catalogue pass's parameters (built on first use, then cached)."""
    olive_pass = all_olive_passes()[name]
    fields: dict[str, Any] = {}
    search_values: dict[str, list[Any]] = {}
    for param, info in olive_pass.params.items():
        annotation = python_type(info.get("schema") or {})
        description = f"{info.get('type', 'Any')}"
        if info.get("required"):
            fields[param] = (annotation, Field(..., description=description))
        else:
            default = info.get("default")
            fields[param] = (Optional[annotation], Field(default, description=description))
        if info.get("searchable"):
            search_values[param] = list(info.get("search_values") or [])
    model = create_model(f"{name}Params", __base__=CatalogParams, **fields)
    model.search_values = search_values
    return model
