"""Older Olive forms that Olive 0.13 no longer reads, rewritten the way Olive's current examples write them.

Called by ``normalize`` on the flat data; each finding becomes a ``Note`` (``old-schema`` for forms
``modelmill migrate`` rewrites, ``unsupported-system`` for AzureML, ``ignored-key`` for keys Olive drops).
What Olive 0.13 does with each, from its source:

* data config ``params_config``, metric ``user_config`` keys ``dataloader_func``/``batch_size``/``data_dir``/
  ``func_kwargs``/``post_processing_func``, sampler ``num_samples``: ``validate_config`` logs "Keys ... are not
  part of ... Ignoring them." (olive/common/config_utils.py), so the data or the sample limit is silently lost;
* pass-level ``user_script``/``dataloader_func``/``data_dir``/``batch_size`` on a pass without those parameters:
  dropped with a warning like any unknown pass key; the pass then has no data;
* several execution providers in one accelerator, or several accelerators: ``AcceleratorConfig`` raises
  "Only one execution provider is supported per accelerator" and ``TargetUserConfig`` "Only one accelerator is
  supported currently" (olive/systems/common.py, system_config.py); Olive <= 0.9 looped over them;
* ``AzureML`` systems: not a ``SystemType`` (olive/systems/common.py); ``azureml_client``: not a RunConfig key,
  so the engine config (``extra="forbid"``) rejects it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelmill.config.diagnostics import KeyPath

if TYPE_CHECKING:
    from modelmill.config.normalize import _Normalizer

# Where an old params_config key goes, by the current component functions that take it
# (olive/data/component/*.py in Olive 0.13: huggingface_dataset, huggingface_pre_process, default_dataloader).
_SECTION_OF = {
    **dict.fromkeys(("data_name", "subset", "split", "data_dir", "data_files", "col_filters", "streaming",
                     "input_names", "input_shapes", "input_types"), "load_dataset_config"),
    **dict.fromkeys(("model_name", "task", "input_cols", "label_cols", "label_col", "max_samples", "max_length",
                     "padding", "truncation", "trust_remote_code"), "pre_process_data_config"),
    **dict.fromkeys(("batch_size", "shuffle", "drop_last", "num_workers"), "dataloader_config"),
}
_SECTIONS = ("load_dataset_config", "pre_process_data_config", "post_process_data_config", "dataloader_config")
OLD_DATA_KEYS = ("dataloader_func", "batch_size", "data_dir", "func_kwargs", "post_processing_func")
"""Keys that held a metric's (or a pass's) data before data configs."""
_PASS_DATA_KEYS = ("user_script", "script_dir", *OLD_DATA_KEYS)
_AZUREML_HINT = "run on a LocalSystem, PythonEnvironment or Docker system (or keep Olive <= 0.9 for AzureML)"


# ------------------------------------------------------------------ AzureML


def azureml_client(norm: _Normalizer, flat: dict[str, Any]) -> None:
    if "azureml_client" not in flat:
        return
    norm.note(("azureml_client",), "error", "'azureml_client' configures AzureML, which Olive 0.13 no longer has: "
              "Olive rejects the key (extra fields not permitted), and ModelMill cannot use AzureML either",
              "remove 'azureml_client' (and any AzureML systems)", code="unsupported-system", remove=True)
    norm.unmigrated.append((("azureml_client",), flat.pop("azureml_client")))


def azureml_system(norm: _Normalizer, entry: dict[str, Any], at: KeyPath) -> dict[str, Any]:
    """An AzureML system: an error; read as a local system so that the rest of the config is still checked."""
    norm.note(at + ("type",), "error", f"'{entry.get('type')}' systems were removed from Olive: Olive 0.13 has "
              "LocalSystem, PythonEnvironment and Docker (ModelMill also Ray), and ModelMill cannot run on AzureML",
              _AZUREML_HINT, code="unsupported-system", key=False)
    norm.unmigrated.append((at, entry))
    return {"type": "LocalSystem", **({"accelerators": entry["accelerators"]} if "accelerators" in entry else {})}


# ------------------------------------------------------------------ accelerators


def split_accelerators(norm: _Normalizer, flat: dict[str, Any]) -> None:
    """Several providers (or accelerators) in one system → the first stays; one new system for each other."""
    systems = flat.get("systems")
    if not isinstance(systems, dict):
        return
    for name in list(systems):
        system = systems[name]
        accelerators = system.get("accelerators") if isinstance(system, dict) else None
        if not isinstance(accelerators, list):
            continue
        pairs = _pairs(accelerators)
        if pairs is None or len(pairs) < 2:
            continue
        at = ("systems", name, "accelerators")
        several_eps = any(len(a.get("execution_providers") or []) > 1 for a in accelerators)
        where = at + (0, "execution_providers") if several_eps and len(accelerators) == 1 else at
        extra = [_system_name(systems, name, accelerator) for accelerator in pairs[1:]]
        norm.note(where, "warning", "several execution providers (or accelerators) in one system is the Olive <= 0.9 "
                  "form, which ran the workflow once for each: Olive 0.13 rejects it (one accelerator with one "
                  f"execution provider per system); ModelMill reads the first, "
                  f"{pairs[0].get('execution_providers', [pairs[0].get('device')])[0]}",
                  f"one system per provider: `modelmill migrate` keeps the first here and adds {', '.join(extra)}; "
                  "name one in 'target' to run for it", key=False)
        system["accelerators"] = [pairs[0]]
        for new_name, accelerator in zip(extra, pairs[1:]):
            systems[new_name] = {**{k: v for k, v in system.items() if k != "accelerators"},
                                 "accelerators": [accelerator]}
            norm.paths.move(("systems", new_name), norm.paths.source(("systems", name)))


def _pairs(accelerators: list[Any]) -> list[dict[str, Any]] | None:
    """One accelerator per (device, provider), in order; None when an accelerator is not an object."""
    result = []
    for accelerator in accelerators:
        if not isinstance(accelerator, dict):
            return None
        eps = accelerator.get("execution_providers")
        if isinstance(eps, list) and len(eps) > 1:
            result.extend({**accelerator, "execution_providers": [ep]} for ep in eps)
        else:
            result.append(accelerator)
    return result


def _system_name(systems: dict[str, Any], base: str, accelerator: dict[str, Any]) -> str:
    eps = accelerator.get("execution_providers") or []
    label = eps[0] if eps and isinstance(eps[0], str) else str(accelerator.get("device") or "other")
    label = label.removesuffix("ExecutionProvider").lower() or "other"
    name, index = f"{base}_{label}", 2
    while name in systems:
        name, index = f"{base}_{label}_{index}", index + 1
    systems[name] = None  # reserve the name
    return name


# ------------------------------------------------------------------ data configs


def params_config(norm: _Normalizer, config: dict[str, Any], at: KeyPath) -> dict[str, Any]:
    """``params_config`` → the current sections, each key where the component that takes it now reads it."""
    params = config.get("params_config")
    if not isinstance(params, dict):
        return config
    placed = {key: _SECTION_OF.get(key, "load_dataset_config") for key in params}
    sections = sorted(set(placed.values()), key=_SECTIONS.index)
    norm.note(at + ("params_config",), "warning", "'params_config' is the older data-config form: Olive 0.13 "
              "ignores it (with a warning), so this data config loads nothing it describes",
              f"write its keys in {', '.join(sections)} (`modelmill migrate` splits it)")
    result = {key: value for key, value in config.items() if key != "params_config"}
    source = norm.paths.source(at + ("params_config",))
    for key, section in placed.items():
        target = result.setdefault(section, {})
        value = params[key]
        new_key = key
        if key == "label_cols" and isinstance(value, list) and len(value) == 1:
            new_key, value = "label_col", value[0]  # huggingface_pre_process takes one label column now
        if isinstance(target, dict):
            target.setdefault(new_key, value)
            norm.paths.move(at + (section, new_key), source + (key,))
    return result


def old_data_keys(norm: _Normalizer, flat: dict[str, Any]) -> None:
    """Metric ``user_config`` and pass-level data keys → a data config, named by the metric or pass."""
    data_configs = flat.get("data_configs")
    if data_configs is None:
        data_configs = []
    if not isinstance(data_configs, list):
        return
    evaluators = flat.get("evaluators")
    for ev_name, evaluator in (evaluators.items() if isinstance(evaluators, dict) else ()):
        metrics = evaluator.get("metrics") if isinstance(evaluator, dict) else None
        for index, metric in enumerate(metrics if isinstance(metrics, list) else ()):
            user_config = metric.get("user_config") if isinstance(metric, dict) else None
            at = ("evaluators", ev_name, "metrics", index)
            if isinstance(user_config, dict):
                _ignored_user_config_keys(norm, user_config, at + ("user_config",))
            if isinstance(user_config, dict) and any(key in user_config for key in OLD_DATA_KEYS):
                name = _data_name(data_configs, f"{metric.get('name') or 'metric'}_data")
                _move_data(norm, metric, user_config, at, at + ("user_config",), name, data_configs,
                           f"metric '{metric.get('name')}'")
    passes = flat.get("passes")
    for pass_name, entries in (passes.items() if isinstance(passes, dict) else ()):
        for at, entry in _entries(pass_name, entries):
            keys = _pass_data_keys(entry)
            if any(key in entry for key in OLD_DATA_KEYS if key in keys):
                name = _data_name(data_configs, f"{pass_name}_data")
                _move_data(norm, entry, entry, at, at, name, data_configs, f"pass '{pass_name}'", keys)
    if data_configs and "data_configs" not in flat:
        flat["data_configs"] = data_configs


def _ignored_user_config_keys(norm: _Normalizer, user_config: dict[str, Any], at: KeyPath) -> None:
    """Keys a metric's user_config does not have: Olive's validate_config warns and drops them."""
    from difflib import get_close_matches

    from modelmill.config.evaluation import USER_CONFIG_KEYS

    for key in [k for k in user_config if k not in USER_CONFIG_KEYS and k not in OLD_DATA_KEYS]:
        close = get_close_matches(key, USER_CONFIG_KEYS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"user_config keys: {', '.join(USER_CONFIG_KEYS)}"
        norm.note(at + (key,), "warning", f"user_config has no key '{key}'; Olive ignores it (with a warning)",
                  hint, code="ignored-key", **({"replace_with": close[0]} if close else {"remove": True}))
        user_config.pop(key)


def _entries(name: str, value: Any) -> list[tuple[KeyPath, dict[str, Any]]]:
    if isinstance(value, dict):
        return [(("passes", name), value)]
    if isinstance(value, list):
        return [(("passes", name, i), item) for i, item in enumerate(value) if isinstance(item, dict)]
    return []


def _pass_data_keys(entry: dict[str, Any]) -> tuple[str, ...]:
    """The old data keys this pass does not have as parameters (some Olive passes still take user_script)."""
    from modelmill.config.olive_catalog import find_olive_pass
    from modelmill.passes.registry import find_pass

    pass_type = entry.get("type")
    if not isinstance(pass_type, str):
        return ()
    cls = find_pass(pass_type)
    olive = find_olive_pass(pass_type)
    own = set(cls.Params.model_fields) if cls is not None else set()
    own |= set(olive.params) if olive is not None else set()
    if "data_config" not in own:
        return ()  # a pass without data: nothing to move the keys to (they stay ignored-key)
    return tuple(key for key in _PASS_DATA_KEYS if key not in own)


def _data_name(data_configs: list[Any], base: str) -> str:
    taken = {c.get("name") for c in data_configs if isinstance(c, dict)}
    name, index = base, 2
    while name in taken:
        name, index = f"{base}_{index}", index + 1
    return name


def _move_data(norm: _Normalizer, owner: dict[str, Any], holder: dict[str, Any], owner_at: KeyPath,
               holder_at: KeyPath, name: str, data_configs: list[Any], what: str,
               keys: tuple[str, ...] = OLD_DATA_KEYS + ("user_script", "script_dir")) -> None:
    """Move the old keys in ``holder`` into a new data config ``name`` and point ``owner``'s data_config at it."""
    present = [key for key in OLD_DATA_KEYS if key in holder and key in keys]
    has_data = owner.get("data_config") is not None
    for key in present:
        message = (f"'{key}' is the form before data configs: Olive 0.13 ignores it (with a warning)"
                   + (f", and {what} already names a data_config" if has_data
                      else f", so {what} gets no data"))
        hint = ("remove it" if has_data else
                f"describe the data in data_configs and name it in data_config (`modelmill migrate` writes "
                f"'{name}'); Olive 0.13 calls the functions that user_script registers "
                "(@Registry.register_dataset(), register_post_process())")
        norm.note(holder_at + (key,), "warning", message, hint, remove=has_data)
    old = {key: holder.pop(key) for key in present}
    if has_data or not old:
        return
    if holder is owner:  # a pass: its user_script/script_dir go with the data (the pass has no such parameters)
        for key in ("user_script", "script_dir"):
            if key in holder and key in keys:
                norm.note(holder_at + (key,), "warning", f"a pass-level '{key}' is the form before data configs: "
                          "Olive 0.13 ignores it (with a warning)", f"it belongs to the data config '{name}' "
                          "(`modelmill migrate` moves it)")
    func_kwargs = old.get("func_kwargs") if isinstance(old.get("func_kwargs"), dict) else {}
    per_function = any(k in func_kwargs for k in ("dataloader_func", "post_processing_func"))
    load: dict[str, Any] = {}
    if "dataloader_func" in old:
        load["type"] = old["dataloader_func"]
    if "data_dir" in old:
        load["data_dir"] = old["data_dir"]
    load.update(func_kwargs.get("dataloader_func", {}) if per_function else func_kwargs)
    config: dict[str, Any] = {"name": name}
    for key in ("user_script", "script_dir"):
        if key in holder and key in keys:
            config[key] = holder.pop(key) if holder is owner else holder[key]
    if load:
        config["load_dataset_config"] = load
    if "post_processing_func" in old:
        config["post_process_data_config"] = {"type": old["post_processing_func"],
                                              **(func_kwargs.get("post_processing_func", {}) if per_function
                                                 else {})}
    if "batch_size" in old:
        config["dataloader_config"] = {"batch_size": old["batch_size"]}
    data_configs.append(config)
    owner["data_config"] = name
    norm.paths.move(("data_configs", len(data_configs) - 1), norm.paths.source(holder_at))
    norm.paths.move(owner_at + ("data_config",), norm.paths.source(holder_at + (present[0],)))


# ------------------------------------------------------------------ search


def num_samples(norm: _Normalizer, strategy: dict[str, Any], at: KeyPath) -> dict[str, Any]:
    if "num_samples" not in strategy:
        return strategy
    norm.note(at + ("num_samples",), "warning", "'num_samples' is the old name of 'max_samples': Olive 0.13 ignores "
              "it (with a warning) and searches every point", f"use \"max_samples\": {strategy['num_samples']}",
              replace_with="max_samples")
    value = strategy.pop("num_samples")
    if "max_samples" not in strategy:
        strategy["max_samples"] = value
        norm.paths.move(at + ("max_samples",), norm.paths.source(at + ("num_samples",)))
    return strategy
