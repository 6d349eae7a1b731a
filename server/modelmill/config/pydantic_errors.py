"""pydantic validation errors → diagnostics at exact ranges, with did-you-mean and allowed values.

pydantic reports error locations in its own terms: union branch tags are mixed into the
path and a missing key's location names the key that is not there. This module turns each
location back into a path in the data, finds the model or type expected there (for the
allowed keys and values), and writes a message for the person editing the config.
"""

from __future__ import annotations

import difflib
import types
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from modelmill.config.diagnostics import Diagnostic, KeyPath, replacing
from modelmill.config.input_models import MODEL_TYPES
from modelmill.config.systems import SYSTEM_TYPES
from modelmill.config.view import ConfigView

# Hints for keys that are commonly written but do not exist (any section).
KEY_HINTS = {
    "trust_remote_code": "put it under load_kwargs: {\"load_kwargs\": {\"trust_remote_code\": true}}",
    "pass_flows": "removed in Olive 0.13: write one pass chain (list alternatives under a pass need search)",
    "auto_optimizer_config": "removed in Olive 0.13: list the passes explicitly, or use `modelmill optimize`",
    "output_name": "removed in Olive 0.13: use output_dir",
    "metadata": "Olive rejects editor metadata in the config: keep it in a separate file",
}
# Hints for values that are commonly written but not allowed: (field, value) → hint.
VALUE_HINTS = {
    ("sampler", "exhaustive"): "an exhaustive search is \"sampler\": \"sequential\" with \"max_samples\": 0",
}
_KIND_WORDS = {"object": "an object", "list": "a list", "scalar": "a single value"}


# ------------------------------------------------------------------ type walking


def _strip(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(tp: Any) -> list[Any]:
    tp = _strip(tp)
    if get_origin(tp) in (Union, types.UnionType):
        return [m for arg in get_args(tp) for m in _members(arg) if m is not type(None)]
    return [tp]


def _fits(tp: Any, value: Any) -> bool:
    origin = get_origin(tp)
    if isinstance(value, dict):
        if _is_model(tp):
            type_field = tp.model_fields.get("type")
            tags = get_args(_strip(type_field.annotation)) if type_field else ()
            return not tags or get_origin(_strip(type_field.annotation)) is not Literal or value.get("type") in tags
        return origin is dict
    if isinstance(value, list):
        return origin in (list, tuple)
    return not _is_model(tp) and origin not in (dict, list, tuple)


def _choose(tp: Any, value: Any) -> Any:
    """The union member that a value is validated against."""
    members = _members(tp)
    return next((m for m in members if _fits(m, value)), members[0] if members else tp)


def _step(tp: Any, value: Any, elem: Any) -> Any:
    tp = _choose(tp, value)
    if _is_model(tp):
        field = tp.model_fields.get(elem) if isinstance(elem, str) else None
        return field.annotation if field is not None else None
    origin, args = get_origin(tp), get_args(tp)
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def annotation_at(root: Any, path: KeyPath, data: Any) -> Any:
    """The type expected at ``path`` of ``data`` (validated as ``root``), or None if unknown."""
    tp, value = root, data
    for elem in path:
        tp = _step(tp, value, elem)
        if tp is None:
            return None
        value = _child(value, elem)
    return tp


def model_at(root: Any, path: KeyPath, data: Any) -> type[BaseModel] | None:
    tp = annotation_at(root, path, data)
    chosen = _choose(tp, _get(data, path)) if tp is not None else None
    return chosen if _is_model(chosen) else None


def allowed_values(annotation: Any) -> list[Any]:
    """Values of the Literal/Enum types inside an annotation, in order."""
    annotation = _strip(annotation)
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return [member.value for member in annotation]
    values: list[Any] = []
    for arg in get_args(annotation):
        values.extend(v for v in allowed_values(arg) if v not in values)
    return values


def _child(value: Any, elem: Any) -> Any:
    if isinstance(value, dict) and isinstance(elem, str):
        return value.get(elem)
    if isinstance(value, list) and isinstance(elem, int) and 0 <= elem < len(value):
        return value[elem]
    return None


def _get(data: Any, path: KeyPath) -> Any:
    for elem in path:
        data = _child(data, elem)
    return data


def data_path(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """pydantic's location → the path in the data, dropping union tags and function names."""
    path: list[Any] = []
    value = data
    for index, elem in enumerate(loc):
        last = index == len(loc) - 1
        if isinstance(value, dict) and isinstance(elem, str) and (elem in value or last):
            path.append(elem)
            value = value.get(elem)
        elif isinstance(value, list) and isinstance(elem, int):
            path.append(elem)
            value = value[elem] if 0 <= elem < len(value) else None
        # anything else is a tag pydantic adds for union branches
    return tuple(path)


# ------------------------------------------------------------------ messages


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """The closest choice (case-insensitive), or the only choice that starts with ``word``."""
    lowered = {choice.lower(): choice for choice in choices}
    match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    if match:
        return lowered[match[0]]
    prefixed = [choice for low, choice in lowered.items() if word and low.startswith(word.lower())]
    return prefixed[0] if len(prefixed) == 1 else None


def choices_hint(value: Any, allowed: list[Any]) -> tuple[str, Any]:
    suggestion = did_you_mean(str(value), [str(a) for a in allowed]) if allowed else None
    listing = ", ".join(repr(a) if not isinstance(a, str) else a for a in allowed)
    if suggestion is not None:
        original = next(a for a in allowed if str(a) == suggestion)
        return f"did you mean '{suggestion}'? allowed: {listing}", original
    return f"allowed: {listing}", None


def _describe(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else f"'{value}'"
    return text if len(text) <= 40 else text[:37] + "..."


def _field_name(path: KeyPath) -> str:
    return next((str(elem) for elem in reversed(path) if isinstance(elem, str)), "value")


def translate(view: ConfigView, exc: ValidationError, root: Any, data: Any, prefix: KeyPath,
              section: str = "here") -> list[Diagnostic]:
    """Diagnostics for every error of ``exc``; ``data`` was validated as ``root`` at flat ``prefix``."""
    by_path: dict[KeyPath, list[ErrorDetails]] = {}
    for error in exc.errors(include_url=False):
        by_path.setdefault(data_path(tuple(error["loc"]), data), []).append(error)
    diagnostics: list[Diagnostic] = []
    for path, errors in by_path.items():
        diagnostics.append(_one(view, errors, path, root, data, prefix, section))
    return diagnostics


def _one(view: ConfigView, errors: list[ErrorDetails], path: KeyPath, root: Any, data: Any, prefix: KeyPath,
         section: str) -> Diagnostic:
    error = errors[0]
    kind, field, where = error["type"], _field_name(path), prefix + path
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        model = model_at(root, path[:-1], data)
        allowed = [name for name in (model.model_fields if model else {}) if not name.startswith("_")]
        suggestion = did_you_mean(field, allowed)
        hint = KEY_HINTS.get(field) or (f"did you mean '{suggestion}'?" if suggestion else
                                        f"allowed keys {section}: {', '.join(allowed)}" if allowed else None)
        extra = replacing(suggestion) or {"remove": True}
        return view.diag(where, "error", "unknown-key", f"unknown key '{field}'", hint, key=True, **extra)
    if kind == "missing":
        owner = model_at(root, path[:-1], data)
        what = f" for {owner.__name__}" if owner is not None and "type" in owner.model_fields else ""
        return view.diag(where, "error", "missing-required", f"missing required key '{field}'{what}",
                         parent_key=True)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return _union_tag(view, error, ctx, where)
    if kind in ("literal_error", "enum"):
        allowed = allowed_values(annotation_at(root, path, data)) or []
        hint, replacement = choices_hint(error["input"], allowed)
        special = VALUE_HINTS.get((field, error["input"])) if isinstance(error["input"], str) else None
        hint = f"{special}; {hint}" if special else hint
        extra = replacing(replacement)
        return view.diag(where, "error", "invalid-value", f"{_describe(error['input'])} is not a valid {field}",
                         hint, **extra)
    code = "invalid-type" if kind.endswith(("_type", "_parsing")) else "invalid-value"
    messages = []
    for item in errors:
        message = str((item.get("ctx") or {}).get("error") or item["msg"]) if item["type"] == "value_error" \
            else item["msg"]
        if message not in messages:
            messages.append(message[0].lower() + message[1:] if message else message)
    custom = code == "invalid-value" and error["type"] == "value_error"  # our own validators say it all
    got = "" if custom else f" (got {_describe(error['input'])})"
    if not path:  # a rule on the whole object (model validator): point at its key
        return view.diag(where, "error", code, "; or ".join(messages), key=True)
    return view.diag(where, "error", code, f"{field}: {'; or '.join(messages)}{got}")


def _type_family(where: KeyPath) -> tuple[str, list[str]]:
    """What a discriminated ``type`` selects at this path, and its allowed values."""
    if where[:1] == ("input_model",):
        return "model type", list(MODEL_TYPES)
    if where[:1] in (("systems",), ("host",), ("target",)) or "host" in where:
        return "system type", list(SYSTEM_TYPES)
    return "type", []


def _union_tag(view: ConfigView, error: ErrorDetails, ctx: dict[str, Any], where: KeyPath) -> Diagnostic:
    discriminator = str(ctx.get("discriminator", ""))
    expected = [tag.strip().strip("'") for tag in str(ctx.get("expected_tags", "")).split(",") if tag.strip()]
    if "value_kind" in discriminator:  # a "name or object" / "one or a list" union got the wrong kind
        words = " or ".join(_KIND_WORDS.get(tag, tag) for tag in expected)
        return view.diag(where, "error", "invalid-type",
                         f"{_field_name(where)} must be {words} (got {_describe(error['input'])})")
    family, known = _type_family(where)
    expected = expected or known
    if error["type"] == "union_tag_not_found":
        return view.diag(where + ("type",), "error", "missing-required", "missing required key 'type'",
                         f"allowed: {', '.join(expected)}" if expected else None, parent_key=True)
    tag = ctx.get("tag")
    hint, replacement = choices_hint(tag, expected)
    extra = replacing(replacement)
    return view.diag(where + ("type",), "error", "invalid-value", f"unknown {family} '{tag}'", hint, **extra)
