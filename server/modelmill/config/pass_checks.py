"""Checks on the ``passes`` section: types, parameters, and how the chain fits together."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from pydantic import ValidationError

from modelmill.config.accelerators import resolve_accelerator
from modelmill.config.architectures import expected_ort_model_type, input_model_info
from modelmill.config.diagnostics import Diagnostic, KeyPath, replacing
from modelmill.config.input_models import MODEL_KINDS
from modelmill.config.olive_catalog import OlivePass, all_olive_passes, find_olive_pass, params_model
from modelmill.config.pass_values import DEFAULT_VALUE, SEARCHABLE_VALUES, is_search_parameter, split_params
from modelmill.config.pydantic_errors import choices_hint, did_you_mean, translate
from modelmill.config.view import ConfigView
from modelmill.passes.base import Pass
from modelmill.passes.registry import all_passes, find_pass

_ENTRY_KEYS = ("type", "host", "evaluator")
# Passes whose only job is graph fusion; running one on already-fused output does nothing useful.
# (Besides any pass that declares ``output_is_fused``.)
_FUSION_PASSES = frozenset({"OrtTransformersOptimization"})


def pass_entries(view: ConfigView, first_only: bool = False) -> Iterator[tuple[str, KeyPath, dict[str, Any]]]:
    """(pass name, flat path, entry) for every pass entry (alternatives too, unless ``first_only``)."""
    passes = view.get(("passes",))
    if not isinstance(passes, dict):
        return
    for name, value in passes.items():
        if isinstance(value, dict):
            yield name, ("passes", name), value
        elif isinstance(value, list):
            for index, item in enumerate(value[:1] if first_only else value):
                if isinstance(item, dict):
                    yield name, ("passes", name, index), item


def _pass_class(entry: dict[str, Any]) -> type[Pass] | None:
    pass_type = entry.get("type")
    return find_pass(pass_type) if isinstance(pass_type, str) else None


def search_on(view: ConfigView) -> bool:
    return isinstance(view.get(("search_strategy",)), dict)


def not_runnable(pass_type: str, entry: dict[str, Any]) -> OlivePass | None:
    """The Olive pass an entry names when ModelMill cannot run it (a known pass, or a mode it lacks)."""
    olive = find_olive_pass(pass_type)
    cls = find_pass(pass_type)
    if cls is None:
        return olive
    if cls.name == "ModelBuilder" and entry.get("metadata_only") is True:
        return olive  # genai_config.json for an existing ONNX model: ModelMill's builder has no such mode
    return None


def not_runnable_message(olive: OlivePass, entry: dict[str, Any]) -> tuple[str, str]:
    if find_pass(olive.name) is not None:  # a mode of a pass ModelMill runs
        return (f"{olive.name} with metadata_only is an Olive pass mode; ModelMill cannot run it here",
                "run it with Olive, or build the model with ModelBuilder from the Hugging Face model")
    return (f"{olive.name} is an Olive pass; ModelMill cannot run it here: it needs {olive.needs()}",
            "run this workflow with Olive (`olive run --config ...`); `modelmill run` stops before it starts")


def check_pass_types(view: ConfigView) -> list[Diagnostic]:
    diagnostics = []
    for _, at, entry in pass_entries(view):
        pass_type = entry.get("type")
        if not isinstance(pass_type, str):
            continue
        olive = not_runnable(pass_type, entry)
        if olive is not None:
            message, hint = not_runnable_message(olive, entry)
            diagnostics.append(view.diag(at + ("type",), "warning", "pass-not-runnable", message, hint,
                                         pass_type=olive.name))
        cls = find_pass(pass_type)
        missing = cls.missing_packages_message() if cls is not None else None
        if cls is not None and missing:  # an optional extra that is not installed: the run would stop here
            diagnostics.append(view.diag(at + ("type",), "error", "pass-not-runnable", missing,
                                         cls.install_hint or "install it", pass_type=cls.name))
        if olive is None and cls is None:
            names = [*all_passes(), *(n for n in all_olive_passes() if n not in all_passes())]
            suggestion = did_you_mean(pass_type, names)
            hint = f"did you mean '{suggestion}'?" if suggestion else "see Olive's pass list (`modelmill schema`)"
            extra = replacing(suggestion)
            diagnostics.append(view.diag(at + ("type",), "error", "unknown-pass-type",
                                         f"unknown pass type '{pass_type}': neither ModelMill nor Olive has it",
                                         hint, **extra))
    return diagnostics


def check_pass_params(view: ConfigView) -> list[Diagnostic]:
    diagnostics: list[Diagnostic] = []
    searching = search_on(view)
    for _, at, entry in pass_entries(view):
        params = {key: value for key, value in entry.items() if key not in _ENTRY_KEYS}
        cls = _pass_class(entry)
        if cls is not None:
            known, ignored = _known(view, params, cls.Params, cls.name, at)
            olive_only, ignored = _olive_only(view, cls.name, params, ignored, at, searching)
            diagnostics.extend(ignored)
            diagnostics.extend(olive_only)
            own = _params(view, cls, known, at, searching)
            diagnostics.extend(own)
            diagnostics.extend(_stricter_in_olive(view, cls.name, known, own, at))
            continue
        olive = find_olive_pass(entry["type"]) if isinstance(entry.get("type"), str) else None
        if olive is not None:
            model = params_model(olive.name)
            known, ignored = _known(view, params, model, olive.name, at)
            diagnostics.extend(ignored)
            diagnostics.extend(_catalog_params(view, olive, model, known, at, searching))
    return diagnostics


def _known(view: ConfigView, params: dict[str, Any], model: Any, pass_name: str,
           at: KeyPath) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Split off keys the pass does not have: Olive ignores them with a warning, so they are warnings here."""
    fields = [name for name in model.model_fields if not name.startswith("_")]
    known = {key: value for key, value in params.items() if key in model.model_fields}
    diagnostics = []
    for key in params:
        if key in known:
            continue
        suggestion = did_you_mean(key, fields)
        hint = f"did you mean '{suggestion}'?" if suggestion else f"{pass_name} parameters: {', '.join(fields)}"
        extra = replacing(suggestion) or {"remove": True}
        diagnostics.append(view.diag(at + (key,), "warning", "ignored-key",
                                     f"{pass_name} has no parameter '{key}'; Olive ignores it (with a warning)",
                                     hint, key=True, **extra))
    return known, diagnostics


def _olive_only(view: ConfigView, name: str, params: dict[str, Any], ignored: list[Diagnostic], at: KeyPath,
                searching: bool) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """Olive parameters of a pass ModelMill runs that its Params do not model: accepted with Olive's type
    (ModelMill does not act on them), so only the keys Olive does not have either stay ``ignored-key``."""
    olive = find_olive_pass(name)
    if olive is None:
        return [], ignored
    model = params_model(olive.name)
    extra = {str(d.path[-1]): params[str(d.path[-1])] for d in ignored if d.path and d.path[-1] in olive.params}
    still = [d for d in ignored if not (d.path and d.path[-1] in olive.params)]
    return _catalog_params(view, olive, model, extra, at, searching, partial=True), still


def _catalog_params(view: ConfigView, olive: OlivePass, model: Any, params: dict[str, Any], at: KeyPath,
                    searching: bool, partial: bool = False) -> list[Diagnostic]:
    """An Olive pass's values, checked as Olive checks them (its pydantic types; search markers; candidates)."""
    from pydantic import ValidationError

    searchable = model.searchable_fields()
    fixed: dict[str, Any] = {}
    diagnostics = []
    for name, value in params.items():
        if value == DEFAULT_VALUE or is_search_parameter(value):
            continue
        if value == SEARCHABLE_VALUES:
            if not searching:
                diagnostics.append(view.diag(at + (name,), "error", "searchable-without-search",
                                             f"'{name}': SEARCHABLE_VALUES needs search_strategy",
                                             "add a search_strategy, or give one value"))
            continue
        if isinstance(value, list) and value and name in searchable and _all_valid(model, name, value):
            continue  # Olive turns a list of valid values for a searchable parameter into search candidates
        fixed[name] = value
    try:
        model.model_validate(fixed)
    except ValidationError as exc:
        found = translate(view, exc, model, fixed, at, section=f"for {olive.name}")
        diagnostics.extend(d for d in found if d.code != "missing-required" or not (partial or _has_default_marker(params, d)))
    return diagnostics


def _stricter_in_olive(view: ConfigView, name: str, params: dict[str, Any], found: list[Diagnostic],
                       at: KeyPath) -> list[Diagnostic]:
    """Values ModelMill accepts for a pass it runs but Olive 0.13 rejects (e.g. execution_mode_list as names where
    Olive types it as integers): a warning, so that a config stays portable back to Olive."""
    olive = find_olive_pass(name)
    if olive is None:
        return []
    model = params_model(olive.name)
    flagged = {d.path[len(at)] for d in found if len(d.path) > len(at)}
    warnings = []
    for param, value in params.items():
        if param in flagged or param not in olive.params or param not in model.model_fields:
            continue
        if value in (DEFAULT_VALUE, SEARCHABLE_VALUES) or is_search_parameter(value) or value is None:
            continue
        if _all_valid(model, param, [value]) or (isinstance(value, list) and _all_valid(model, param, value)):
            continue
        expected = olive.params[param].get("type") or "another type"
        warnings.append(view.diag(at + (param,), "warning", "olive-incompatible",
                                  f"Olive 0.13 rejects this value of {name}.{param} (it expects {expected}); "
                                  "ModelMill accepts it", "write it as Olive types it to keep the config portable"))
    return warnings


def _all_valid(model: Any, name: str, values: list[Any]) -> bool:
    from pydantic import ValidationError

    adapter = _field_adapter(model, name)
    try:
        for value in values:
            adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@lru_cache(maxsize=None)
def _field_adapter(model: Any, name: str) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(model.model_fields[name].annotation)


def _has_default_marker(params: dict[str, Any], diag: Diagnostic) -> bool:
    return bool(diag.path) and params.get(str(diag.path[-1])) == DEFAULT_VALUE


def _params(view: ConfigView, cls: type[Pass], params: dict[str, Any], at: KeyPath,
            searching: bool) -> list[Diagnostic]:
    split = split_params(params, cls.Params, searching)
    diagnostics = [view.diag(at + (problem.param,), "error", problem.code, problem.message, problem.hint)
                   for problem in split.problems]
    precision = split.fixed.get("precision")
    bad_precision = cls.supported_precisions is not None and isinstance(precision, str) \
        and precision not in cls.supported_precisions
    if bad_precision:
        hint, replacement = choices_hint(precision, list(cls.supported_precisions or ()))
        extra = replacing(replacement)
        diagnostics.append(view.diag(at + ("precision",), "error", "unsupported-precision",
                                     f"{cls.name} does not support precision '{precision}'", hint, **extra))
    try:
        cls.Params.model_validate(split.fixed)
    except ValidationError as exc:
        found = translate(view, exc, cls.Params, split.fixed, at, section=f"for {cls.name}")
        diagnostics.extend(d for d in found if not (bad_precision and d.path[-1:] == ("precision",)))
    for param, candidates in split.candidates.items():
        diagnostics.extend(_candidates(view, cls, split.fixed, param, candidates, at))
    return diagnostics


def _candidates(view: ConfigView, cls: type[Pass], fixed: dict[str, Any], param: str, candidates: list[Any],
                at: KeyPath) -> list[Diagnostic]:
    """Each search candidate must be a valid value on its own (the first one was checked with the rest)."""
    diagnostics = []
    for index, candidate in enumerate(candidates[1:], start=1):
        try:
            cls.Params.model_validate({**fixed, param: candidate})
        except ValidationError as exc:
            own = [e for e in exc.errors(include_url=False) if e["loc"][:1] == (param,)]
            if own:
                diagnostics.append(view.diag(at + (param, index), "error", "invalid-value",
                                             f"search candidate {candidate!r} for '{param}': {own[0]['msg']}"))
    return diagnostics


def check_pass_flow(view: ConfigView) -> list[Diagnostic]:
    """Each pass must accept what the step before produces; fusion after fused output is redundant."""
    model = view.get(("input_model",))
    kind = MODEL_KINDS.get(str(model.get("type"))) if isinstance(model, dict) else None
    source = "the input model"
    fused_by: tuple[str, type[Pass]] | None = None
    diagnostics = []
    for name, at, entry in pass_entries(view, first_only=True):
        cls = _pass_class(entry)
        olive = not_runnable(entry["type"], entry) if isinstance(entry.get("type"), str) else None
        if cls is None or olive is not None:
            if olive is not None and kind is not None and olive.takes(kind) is False:
                diagnostics.append(view.diag(
                    at + ("type",), "error", "model-kind-mismatch",
                    f"{olive.name} takes {' or '.join(olive.accepts)} models, but {source} is {kind}; "
                    "Olive would fail when it reaches this pass",
                    "reorder the passes, or add a conversion pass before this one"))
            kind = None  # a pass ModelMill does not run: we cannot tell what flows on
            fused_by = None
            continue
        if kind is not None and not cls.takes(kind):
            diagnostics.append(view.diag(
                at + ("type",), "error", "model-kind-mismatch",
                f"{cls.name} takes {' or '.join(sorted(cls.accepts))} models, but {source} is {kind}",
                cls.input_hint or "reorder the passes, or add a conversion pass before this one"))
        fuses = cls.output_is_fused or cls.name in _FUSION_PASSES
        if fused_by is not None and fuses:
            earlier_name, earlier = fused_by
            diagnostics.append(view.diag(
                at, "warning", "redundant-pass",
                f"pass '{name}' ({cls.name}) is redundant after '{earlier_name}' ({earlier.name}): its output "
                "already has fused attention and layer norms", f"remove pass '{name}'", key=True, remove=True))
        if cls.output_is_fused and fused_by is None:
            fused_by = (name, cls)
        kind, source = (cls.output_kind(kind) if kind is not None else cls.produces), f"the output of '{name}'"
    return diagnostics


def check_model_type(view: ConfigView) -> list[Diagnostic]:
    """An explicit optimizer ``model_type`` must match the input model's architecture."""
    info = None
    diagnostics: list[Diagnostic] = []
    for _, at, entry in pass_entries(view):
        cls = _pass_class(entry)
        model_type = entry.get("model_type")
        if cls is None or "model_type" not in cls.Params.model_fields or not isinstance(model_type, str):
            continue
        info = info or input_model_info(view)
        if info is None:
            return diagnostics  # hub id, missing folder or unknown format: nothing to compare with
        known, expected = expected_ort_model_type(info)
        if not known or model_type == expected:
            continue
        arch = f"{info.architecture}, model_type {info.model_type}" if info.architecture else info.model_type
        hint = f"use \"model_type\": \"{expected}\"" if expected else (
            f"ORT's transformer optimizer has no model type for {info.model_type} models, so these fusions will not "
            f"match; ModelBuilder already fuses {info.model_type} models")
        diagnostics.append(view.diag(at + ("model_type",), "warning", "model-type-mismatch",
                                     f"model_type '{model_type}' does not match the input model ({arch})",
                                     hint, **replacing(expected)))
    return diagnostics


def check_target_support(view: ConfigView) -> list[Diagnostic]:
    """A pass that declares its execution providers should support the target's (Olive does not check)."""
    try:
        ep = resolve_accelerator(view.system(view.get(("target",)))).execution_provider
    except ValueError:
        return []  # reported by the accelerator checks
    diagnostics = []
    for _, at, entry in pass_entries(view):
        cls = _pass_class(entry)
        if cls is not None and cls.supported_providers is not None and ep not in cls.supported_providers:
            diagnostics.append(view.diag(at + ("type",), "warning", "unsupported-provider",
                                         f"{cls.name} does not support {ep}, the target's execution provider",
                                         f"supported: {', '.join(cls.supported_providers)}"))
    return diagnostics


PASS_CHECKS = (check_pass_types, check_pass_params, check_pass_flow, check_model_type, check_target_support)
