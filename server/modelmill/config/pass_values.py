"""Pass parameter values that are not plain values: Olive's search markers and candidate lists.

A parameter may be ``"DEFAULT_VALUE"``, ``"SEARCHABLE_VALUES"`` (search only), an explicit
SearchParameter object, or, with search on, a list of candidates for a searchable
parameter. ``split_params`` separates those from the fixed values that the pass's Params
model validates.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

DEFAULT_VALUE = "DEFAULT_VALUE"
SEARCHABLE_VALUES = "SEARCHABLE_VALUES"


@dataclass(frozen=True)
class ValueProblem:
    param: str
    code: str
    message: str
    hint: str | None = None


@dataclass
class SplitParams:
    fixed: dict[str, Any] = field(default_factory=dict)
    """Values to validate with the Params model (first candidate for a candidate list)."""
    candidates: dict[str, list[Any]] = field(default_factory=dict)
    """Searched parameters → the values the search tries."""
    problems: list[ValueProblem] = field(default_factory=list)


def is_search_parameter(value: Any) -> bool:
    return isinstance(value, dict) and value.get("olive_parameter_type") == "SearchParameter"


def accepts_list(annotation: Any) -> bool:
    """True when a field's type admits a list (so a list value is a value, not candidates)."""
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset):
        return True
    if origin in (Union, types.UnionType) or str(origin).endswith("Annotated"):
        return any(accepts_list(arg) for arg in get_args(annotation))
    return annotation is Any


def split_params(params: dict[str, Any], params_cls: type[BaseModel], search_on: bool) -> SplitParams:
    searchable: dict[str, list[Any]] = getattr(params_cls, "searchable_fields", dict)()
    fields = params_cls.model_fields
    result = SplitParams()
    for name, value in params.items():
        info = fields.get(name)
        if value == DEFAULT_VALUE:
            if info is not None and info.is_required():
                result.problems.append(ValueProblem(name, "missing-required",
                                                    f"'{name}' is required and cannot be DEFAULT_VALUE"))
            continue
        if value == SEARCHABLE_VALUES or is_search_parameter(value):
            if not search_on:
                result.problems.append(ValueProblem(
                    name, "searchable-without-search", f"'{name}': search values need search_strategy",
                    "add a search_strategy (and an evaluator), or give one fixed value"))
            elif value == SEARCHABLE_VALUES and name not in searchable:
                result.problems.append(ValueProblem(
                    name, "invalid-value", f"'{name}' has no default search values",
                    f"searchable parameters: {', '.join(searchable) or 'none'}"))
            else:
                result.candidates[name] = list(value.get("support") or []) if isinstance(value, dict) \
                    else list(searchable.get(name, []))
            continue
        if isinstance(value, list) and info is not None and not accepts_list(info.annotation):
            if search_on and name in searchable:
                result.candidates[name] = value
                if value:
                    result.fixed[name] = value[0]
                continue
            hint = ("a list of values is searched only with search_strategy" if name in searchable
                    else f"'{name}' takes one value, not a list")
            result.problems.append(ValueProblem(name, "invalid-type", f"'{name}' takes one value, not a list", hint))
            continue
        result.fixed[name] = value
    return result


def literal_values(annotation: Any) -> list[Any]:
    """Allowed values of a Literal (looking through Optional/Annotated/list), for hints."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    values: list[Any] = []
    for arg in get_args(annotation):
        values.extend(v for v in literal_values(arg) if v not in values)
    return values
