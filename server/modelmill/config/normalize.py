"""Any Olive config form → the current flat form, remembering where every moved key came from.

Olive accepts an ``engine:`` block, ``config:`` blocks, renamed keys and old pass names,
and crashes on some of them at run time. ``normalize`` rewrites all of them into the flat
form that ``WorkflowConfig`` describes, records a ``Note`` for each old construct (they
become ``old-schema`` diagnostics and drive ``migrate``), and keeps a ``PathMap`` so that
an error found in the flat data is reported at its place in the original text.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from modelmill.config.diagnostics import KeyPath, Severity
from modelmill.config.evaluation import USER_CONFIG_KEYS
from modelmill.config import old_forms
from modelmill.config.input_models import MODEL_TYPES
from modelmill.config.systems import SYSTEM_TYPES
from modelmill.passes.registry import find_pass

_MODEL_TYPES = {name.lower(): name for name in MODEL_TYPES}
_SYSTEM_TYPES = {name.lower(): name for name in SYSTEM_TYPES}
_PACKAGING_TYPES = {"zipfile": "Zipfile", "dockerfile": "Dockerfile"}
_OLD_PASS_KEYS = ("disable_search", "clean_run_cache", "output_name")
_PASS_OWN_KEYS = ("type", "host", "evaluator", "config")


@dataclass(frozen=True)
class Note:
    """An old construct found in the source. ``path`` is in source coordinates."""

    path: KeyPath
    severity: Severity
    code: str
    message: str
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    key: bool = True  # point at the key (True) or at the value


class PathMap:
    """Flat path → source path. Moved subtrees are recorded once, at their root."""

    def __init__(self) -> None:
        self._moves: dict[KeyPath, KeyPath] = {}

    def move(self, flat: KeyPath, source: KeyPath) -> None:
        self._moves[flat] = source

    def source(self, flat: KeyPath) -> KeyPath:
        for size in range(len(flat), 0, -1):
            moved = self._moves.get(flat[:size])
            if moved is not None:
                return moved + flat[size:]
        return flat


@dataclass
class Normalized:
    data: Any
    path_map: PathMap
    notes: list[Note]
    unmigrated: list[tuple[KeyPath, Any]] = field(default_factory=list)
    """(flat path, original value) of what ModelMill reads differently but ``migrate`` must not rewrite
    (an AzureML system is checked as a local one, yet stays AzureML in the migrated file)."""

    def __iter__(self) -> Iterator[Any]:  # flat, path_map, notes = normalize(data)
        return iter((self.data, self.path_map, self.notes))


class _Normalizer:
    def __init__(self) -> None:
        self.paths = PathMap()
        self.notes: list[Note] = []
        self.unmigrated: list[tuple[KeyPath, Any]] = []

    def note(self, flat: KeyPath, severity: Severity, message: str, hint: str | None = None,
             code: str = "old-schema", key: bool = True, source: KeyPath | None = None, **data: Any) -> None:
        """Record a finding at ``flat`` (mapped to the source), or at ``source`` when given."""
        payload = {"migrate": True, **data} if code == "old-schema" else data
        where = source if source is not None else self.paths.source(flat)
        self.notes.append(Note(where, severity, code, message, hint, payload, key))

    def lift(self, entry: dict[str, Any], block: str, at: KeyPath, what: str) -> dict[str, Any]:
        """Merge ``entry[block]`` (a dict) into ``entry`` in its place; the nested value wins, as in Olive."""
        nested = entry.get(block)
        if not isinstance(nested, dict):
            return entry
        self.note(at + (block,), "hint", f"'{block}' block: the keys of {what} can be written directly, "
                  f"without '{block}' (the flat form)", "run `modelmill migrate` to rewrite the file")
        result: dict[str, Any] = {}
        for key, value in entry.items():
            if key != block:
                if key not in nested:
                    result[key] = value
                elif key != "type":
                    self.note(at + (key,), "warning", f"'{key}' is set both here and under '{block}'; the "
                              f"'{block}' value wins, as in Olive", "remove one of them", code="key-collision",
                              remove=True)
                continue
            for inner_key, inner_value in nested.items():
                result[inner_key] = inner_value
                self.paths.move(at + (inner_key,), self.paths.source(at + (block, inner_key)))
        return result

    # ----------------------------------------------------------------- sections

    def root(self, data: dict[str, Any]) -> dict[str, Any]:
        flat = self.engine(data)
        flat = self.engine_accelerators(flat)
        old_forms.azureml_client(self, flat)
        if isinstance(flat.get("input_model"), dict):
            flat["input_model"] = self.input_model(flat["input_model"], ("input_model",))
        if isinstance(flat.get("systems"), dict):
            for name, system in flat["systems"].items():
                if isinstance(system, dict):
                    flat["systems"][name] = self.system(system, ("systems", name))
        for key in ("host", "target"):
            if isinstance(flat.get(key), dict):
                flat[key] = self.system(flat[key], (key,))
        old_forms.split_accelerators(self, flat)
        if isinstance(flat.get("data_configs"), dict):
            flat["data_configs"] = self.data_config_map(flat["data_configs"])
        if isinstance(flat.get("data_configs"), list):
            flat["data_configs"] = [old_forms.params_config(self, item, ("data_configs", index))
                                    if isinstance(item, dict) else item
                                    for index, item in enumerate(flat["data_configs"])]
        if isinstance(flat.get("evaluators"), dict):
            for name, evaluator in flat["evaluators"].items():
                if isinstance(evaluator, dict):
                    self.evaluator(evaluator, ("evaluators", name))
        if isinstance(flat.get("evaluator"), dict):
            self.evaluator(flat["evaluator"], ("evaluator",))
        if isinstance(flat.get("passes"), dict):
            self.passes(flat["passes"])
        old_forms.old_data_keys(self, flat)
        if isinstance(flat.get("search_strategy"), dict):
            flat["search_strategy"] = self.search_strategy(flat["search_strategy"], ("search_strategy",))
        self.packaging(flat)
        return flat

    def engine(self, data: dict[str, Any]) -> dict[str, Any]:
        engine = data.get("engine")
        if "engine" not in data:
            return data
        if not isinstance(engine, dict):
            if engine is not None:
                self.note(("engine",), "error", "'engine' must be an object of engine keys", code="invalid-type",
                          key=False)
            return {k: v for k, v in data.items() if k != "engine"}
        self.note(("engine",), "hint", "'engine' block: engine keys can be written at the top level (the flat "
                  "form)", "run `modelmill migrate` to rewrite the file")
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key != "engine":
                if key in engine:
                    self.note((key,), "warning", f"'{key}' is set both here and under 'engine'; the 'engine' value "
                              "wins, as in Olive", "remove one of them", code="key-collision", source=(key,),
                              remove=True)
                    flat.setdefault(key, None)  # keep the first position; the value comes from engine
                    continue
                flat[key] = value
                continue
            for inner_key, inner_value in engine.items():
                flat[inner_key] = inner_value
                self.paths.move((inner_key,), ("engine", inner_key))
        for inner_key, inner_value in engine.items():
            flat[inner_key] = inner_value
        return flat

    def engine_accelerators(self, flat: dict[str, Any]) -> dict[str, Any]:
        """Old ``engine.execution_providers`` / ``engine.accelerators`` → the target system's accelerator."""
        eps, devices = flat.get("execution_providers"), flat.get("accelerators")
        if eps is None and devices is None:
            return flat
        eps_list = eps if isinstance(eps, list) else ([eps] if eps is not None else [])
        device_list = devices if isinstance(devices, list) else ([devices] if devices is not None else [])
        accelerator: dict[str, Any] = {}
        for item in device_list:
            if isinstance(item, dict):
                accelerator.update(item)
            elif isinstance(item, str):
                accelerator.setdefault("device", item)
        if eps_list:
            accelerator["execution_providers"] = eps_list
        origin = "execution_providers" if eps is not None else "accelerators"
        eps_source, devices_source = self.paths.source(("execution_providers",)), self.paths.source(("accelerators",))
        self.note((origin,), "warning", f"'{origin}' at the engine level is the old form: Olive 0.13 rejects it",
                  "move it into systems.<name>.accelerators and name that system in 'target'")
        flat = {k: v for k, v in flat.items() if k not in ("execution_providers", "accelerators")}
        systems = flat.setdefault("systems", {}) if isinstance(flat.get("systems", {}), dict) else None
        target = flat.get("target")
        if systems is None:
            return flat
        if isinstance(target, str) and isinstance(systems.get(target), dict):
            name = target
        else:
            name = "local_system" if "local_system" not in systems or target == "local_system" else "target_system"
            if name not in systems:
                systems[name] = {"type": "LocalSystem"}
                self.paths.move(("systems", name), self.paths.source((origin,)))
            flat["target"] = name
            self.paths.move(("target",), self.paths.source((origin,)))
        system = systems[name]
        nested, at = (system["config"], ("systems", name, "config")) if isinstance(system.get("config"), dict) \
            else (system, ("systems", name))
        existing = nested.get("accelerators")
        if isinstance(existing, list) and existing and isinstance(existing[0], dict):
            accelerator = {**existing[0], **accelerator}  # keep the system's device unless the engine names one
        nested["accelerators"] = [accelerator]
        self.paths.move(at + ("accelerators",), self.paths.source((origin,)))
        self.paths.move(at + ("accelerators", 0, "execution_providers"), eps_source)
        self.paths.move(at + ("accelerators", 0, "device"), devices_source)
        return flat

    def input_model(self, entry: dict[str, Any], at: KeyPath) -> dict[str, Any]:
        entry = self.lift(entry, "config", at, "input_model")
        model_type = entry.get("type")
        if isinstance(model_type, str) and model_type.lower() in _MODEL_TYPES:
            entry["type"] = model_type = _MODEL_TYPES[model_type.lower()]
        if model_type == "PyTorchModel" and isinstance(entry.get("hf_config"), dict):
            return self.hf_config(entry, at)
        if model_type == "PyTorchModel" and "task" in entry and not entry.get("model_loader"):
            self.note(at + ("type",), "warning", "PyTorchModel with 'task' is a Hugging Face model: Olive 0.13 fails "
                      "on it at run time (TypeError: unexpected keyword argument 'task'); ModelMill reads it as "
                      "HfModel", "use \"type\": \"HfModel\"", key=False, replace_with="HfModel")
            entry["type"] = model_type = "HfModel"
        if model_type == "HfModel" and "model_name" in entry and "model_path" not in entry:
            self.note(at + ("model_name",), "warning", "HfModel takes 'model_path', not 'model_name': Olive 0.13 "
                      "fails on it at run time", "rename 'model_name' to 'model_path'", replace_with="model_path")
            entry = _rename(entry, "model_name", "model_path")
            self.paths.move(at + ("model_path",), self.paths.source(at + ("model_name",)))
        return entry

    def hf_config(self, entry: dict[str, Any], at: KeyPath) -> dict[str, Any]:
        """``PyTorchModel`` + ``hf_config: {model_name, task, ...}`` → ``HfModel``."""
        hf = entry["hf_config"]
        self.note(at + ("hf_config",), "warning", "PyTorchModel with hf_config is the old form: Olive 0.13 fails on "
                  "it at run time (TypeError: unexpected keyword argument 'hf_config'); ModelMill reads it as HfModel",
                  "write {\"type\": \"HfModel\", \"model_path\": ..., \"task\": ...}", replace_with="HfModel")
        source = self.paths.source(at + ("hf_config",))
        renames = {"model_name": "model_path", "from_pretrained_args": "load_kwargs"}
        result: dict[str, Any] = {"type": "HfModel"}
        for hf_key, hf_value in hf.items():
            new_key = renames.get(hf_key, hf_key)
            result[new_key] = hf_value
            self.paths.move(at + (new_key,), source + (hf_key,))
        for key, value in entry.items():
            if key not in ("type", "hf_config"):
                result.setdefault(key, value)
        return result

    def system(self, entry: dict[str, Any], at: KeyPath) -> dict[str, Any]:
        entry = self.lift(entry, "config", at, "a system")
        system_type = entry.get("type")
        if isinstance(system_type, str) and system_type.lower() in _SYSTEM_TYPES:
            entry["type"] = _SYSTEM_TYPES[system_type.lower()]
        if isinstance(system_type, str) and system_type.lower() == "azureml":
            return old_forms.azureml_system(self, entry, at)
        accelerators = entry.get("accelerators")
        if isinstance(accelerators, list):
            for index, item in enumerate(accelerators):
                if isinstance(item, str):
                    self.note(at + ("accelerators", index), "warning", f"accelerator '{item}' as a plain string is "
                              "the old form", f"write {{\"device\": \"{item}\"}}", key=False)
                    accelerators[index] = {"device": item}
        return entry

    def data_config_map(self, configs: dict[str, Any]) -> list[Any]:
        """Very old Olive: ``data_configs`` as a name → config map."""
        self.note(("data_configs",), "warning", "'data_configs' as a map is the old form; it is a list now",
                  "write a list of {\"name\": ..., ...} objects")
        result: list[Any] = []
        for index, (name, config) in enumerate(configs.items()):
            result.append({"name": name, **config} if isinstance(config, dict) else config)
            self.paths.move(("data_configs", index), ("data_configs", name))
        return result

    def evaluator(self, evaluator: dict[str, Any], at: KeyPath) -> None:
        metrics = evaluator.get("metrics")
        if not isinstance(metrics, list):
            return
        for index, metric in enumerate(metrics):
            if not isinstance(metric, dict):
                continue
            flat_keys = [key for key in USER_CONFIG_KEYS if key in metric]
            if not flat_keys or (metric.get("user_config") is not None and not isinstance(metric["user_config"], dict)):
                continue
            where = at + ("metrics", index)
            user_config = dict(metric.get("user_config") or {})
            for key in flat_keys:
                self.note(where + (key,), "warning", f"metric-level '{key}' belongs under 'user_config': Olive 0.13 "
                          "silently drops it when written here", f"move '{key}' into user_config")
                self.paths.move(where + ("user_config", key), self.paths.source(where + (key,)))
                user_config.setdefault(key, metric.pop(key))
            metric["user_config"] = user_config

    def passes(self, passes: dict[str, Any]) -> None:
        for name, value in passes.items():
            if isinstance(value, dict):
                passes[name] = self.pass_entry(value, ("passes", name))
            elif isinstance(value, list):
                passes[name] = [self.pass_entry(item, ("passes", name, index)) if isinstance(item, dict) else item
                                for index, item in enumerate(value)]

    def pass_entry(self, entry: dict[str, Any], at: KeyPath) -> dict[str, Any]:
        entry = self.lift(entry, "config", at, "a pass")
        pass_type = entry.get("type")
        cls = find_pass(pass_type) if isinstance(pass_type, str) else None
        if cls is not None and isinstance(pass_type, str):
            if pass_type.lower() != cls.name.lower():
                self.note(at + ("type",), "warning", f"'{pass_type}' is an old name of {cls.name}: Olive 0.13 fails "
                          "on it at run start", f"use \"{cls.name}\"", key=False, replace_with=cls.name)
            entry["type"] = cls.name
        for old in _OLD_PASS_KEYS:
            if old in entry:
                self.note(at + (old,), "hint", f"'{old}' is no longer used: Olive ignores it", f"remove '{old}'",
                          remove=True)
                entry.pop(old)
        return entry

    def search_strategy(self, strategy: dict[str, Any], at: KeyPath) -> dict[str, Any]:
        order = strategy.get("execution_order")
        if isinstance(order, str):
            strategy["execution_order"] = order.lower()
        if "search_algorithm" in strategy:
            algorithm = strategy["search_algorithm"]
            sampler = "sequential" if algorithm == "exhaustive" else algorithm
            self.note(at + ("search_algorithm",), "warning", "'search_algorithm' is the old name of 'sampler': Olive "
                      "0.13 crashes on it (KeyError: None)", f"use \"sampler\": \"{sampler}\"", replace_with="sampler")
            if "sampler" not in strategy:
                strategy = _rename(strategy, "search_algorithm", "sampler")
                strategy["sampler"] = sampler
                self.paths.move(at + ("sampler",), self.paths.source(at + ("search_algorithm",)))
                if algorithm == "exhaustive":
                    strategy.setdefault("max_samples", 0)
            else:
                strategy.pop("search_algorithm")
        for block in ("search_algorithm_config", "sampler_config"):
            if isinstance(strategy.get(block), dict):
                strategy = self.lift(strategy, block, at, "search_strategy")
        return old_forms.num_samples(self, strategy, at)

    def packaging(self, flat: dict[str, Any]) -> None:
        value = flat.get("packaging_config")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("type"), str):
                item["type"] = _PACKAGING_TYPES.get(item["type"].lower(), item["type"])


def _rename(entry: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """Rename a key in place in the key order."""
    return {(new if key == old else key): value for key, value in entry.items()}


def normalize(data: Any) -> Normalized:
    """The flat form of ``data`` (a new object; ``data`` is not changed), its path map and old-form notes."""
    normalizer = _Normalizer()
    if not isinstance(data, dict):
        return Normalized(data, normalizer.paths, [])
    flat = normalizer.root(copy.deepcopy(data))
    return Normalized(flat, normalizer.paths, normalizer.notes, normalizer.unmigrated)
