"""lm-eval (the lm-evaluation-harness) tasks as ModelMill metrics: the ``lm_eval`` metric type, and Olive's
``LMEvaluator`` evaluator, which becomes one ``lm_eval`` metric per task.

A metric of type ``lm_eval`` scores one task (its name, or ``metric_config.task``: a task or group name, or a task
YAML file) on the model and reports the task's metrics as sub types: ``acc``, ``acc_norm``, ``exact_match``, ...
(``metric,filter`` when the task filters its output, as lm-eval writes it). The sub type ``*`` reports every metric
of the task and of its subtasks (what Olive's LMEvaluator reports: ``arc_easy-acc``, ``arc_easy-acc_norm``, ...).

``metric_config`` (the same on every sub type of the metric): ``task``, ``include_path`` (folders of task YAMLs),
``limit`` (samples per task: a count, or a fraction below 1; 0 or unset: all), ``num_fewshot``, ``batch_size``,
``max_length``, ``max_gen_toks``, ``model_class`` (``hf``, ``ort``, ``ortgenai``; default by model: ORT GenAI folder →
ortgenai, other ONNX → ort, Hugging Face folder → hf), ``device`` (``cpu``/``gpu``; default: the run's accelerator),
``bootstrap_iters`` (lm-eval's stderr bootstrap, default 100000).

Nothing is downloaded: task data is read with ``HF_DATASETS_OFFLINE``/``HF_HUB_OFFLINE`` set, so a task works when
its data is local (a task YAML with ``dataset_path: json`` and ``data_files``, or a dataset already in the Hugging
Face cache); a task whose data is only on the Hub stops with an error naming the dataset and how to provide it.
Relative ``data_files`` of a task YAML are read from the YAML's folder (else the working folder).

This module imports nothing heavy at load: the planner uses ``evaluator_metrics``.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modelmill.engine.model import ModelRef
from modelmill.errors import ConfigError
from modelmill.evaluate.runtime import EvaluationError

WILDCARD = "*"
MODEL_CLASSES = ("hf", "ort", "ortgenai")
CONFIG_KEYS = ("task", "include_path", "limit", "num_fewshot", "batch_size", "max_length", "max_gen_toks",
               "model_class", "device", "bootstrap_iters")
# Olive's LMEvaluator keys (olive_evaluator.py, rel-0.13.0), plus ModelMill's include_path, num_fewshot, max_gen_toks.
EVALUATOR_KEYS = ("tasks", "limit", "batch_size", "max_length", "model_class", "device", "bootstrap_iters",
                  "execution_provider", "provider_options", "include_path", "num_fewshot", "max_gen_toks")
DEFAULT_BOOTSTRAP_ITERS = 100000
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow", "pandas")
OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
TASK_DOCS = "docs/evaluate.md#lm-eval-tasks-offline"
NOT_METRICS = ("alias", "name", "sample_len", "sample_count")

log = logging.getLogger("modelmill.lm_eval")


# ---------------------------------------------------------------------------------------------- options

@dataclass(frozen=True)
class TaskOptions:
    task: str
    include_path: tuple[str, ...] = ()
    limit: float | None = None
    num_fewshot: int | None = None
    batch_size: int = 1
    max_length: int | None = None
    max_gen_toks: int = 256
    model_class: str | None = None
    device: str | None = None
    bootstrap_iters: int = DEFAULT_BOOTSTRAP_ITERS


def _paths(value: Any, base_dir: Path | None) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else list(value or [])
    out = []
    for item in values:
        path = Path(str(item)).expanduser()
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        out.append(str(path.resolve()) if path.exists() else str(path))
    return tuple(out)


def task_options(name: str, config: dict[str, Any], base_dir: Path | None = None) -> TaskOptions:
    """The options of an lm_eval metric from its metric_config (paths resolved against ``base_dir``)."""
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise EvaluationError(f"lm_eval metric {name}: unknown metric_config key(s) {', '.join(unknown)}",
                              fix=f"use any of: {', '.join(CONFIG_KEYS)}")
    task = str(config.get("task") or name)
    if task.endswith((".yaml", ".yml")):
        task = _paths(task, base_dir)[0]
    model_class = config.get("model_class")
    if model_class is not None and model_class not in MODEL_CLASSES:
        raise EvaluationError(f"lm_eval metric {name}: model_class {model_class!r} is not one of "
                              f"{', '.join(MODEL_CLASSES)}", fix="use hf, ort or ortgenai, or leave it out")
    device = config.get("device")
    if device is not None and device not in ("cpu", "gpu", "cuda"):
        raise EvaluationError(f"lm_eval metric {name}: device {device!r} is not cpu or gpu", fix="use cpu or gpu")
    limit = config.get("limit")
    try:
        return TaskOptions(task=task, include_path=_paths(config.get("include_path"), base_dir),
                           limit=float(limit) if limit not in (None, 0, 0.0) else None,
                           num_fewshot=int(config["num_fewshot"]) if config.get("num_fewshot") is not None else None,
                           batch_size=max(1, int(config.get("batch_size") or 1)),
                           max_length=int(config["max_length"]) if config.get("max_length") else None,
                           max_gen_toks=int(config.get("max_gen_toks") or 256), model_class=model_class,
                           device=device, bootstrap_iters=int(config.get("bootstrap_iters", DEFAULT_BOOTSTRAP_ITERS)))
    except (TypeError, ValueError) as exc:
        raise EvaluationError(f"lm_eval metric {name}: {exc}", fix="give numbers for limit, num_fewshot, "
                                                                   "batch_size, max_length, bootstrap_iters") from exc


def task_label(task: str) -> str:
    """The metric name for a task: its name, or for a task YAML file the ``task:`` (or ``group:``) it declares (else
    its stem)."""
    if not task.endswith((".yaml", ".yml")):
        return task
    path = Path(task)
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            match = re.match(r"^(?:task|group):\s*['\"]?([^'\"#\s\[]+)['\"]?\s*(#.*)?$", line)
            if match:
                return match.group(1)
    except OSError:
        pass
    return path.stem


def evaluator_metrics(type_args: dict[str, Any]) -> list[dict[str, Any]]:
    """Olive's LMEvaluator (``tasks`` and options) as ModelMill metric dicts: one ``lm_eval`` metric per task,
    reporting everything (sub type ``*``); Olive's pseudo task ``size_on_disk`` is the size metric."""
    unknown = sorted(set(type_args) - set(EVALUATOR_KEYS))
    if unknown:
        raise ConfigError(f"LMEvaluator has unknown key(s) {', '.join(unknown)}",
                          fix=f"use any of: {', '.join(EVALUATOR_KEYS)}", where="evaluators")
    tasks = type_args.get("tasks")
    tasks = [tasks] if isinstance(tasks, str) else tasks
    if not tasks or not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks):
        raise ConfigError("LMEvaluator needs tasks: a list of lm-eval task names (or task YAML files)",
                          fix='add "tasks": ["arc_easy"] (or a local task, docs/evaluate.md)', where="evaluators")
    shared = {key: type_args[key] for key in ("limit", "batch_size", "max_length", "model_class", "device",
                                               "bootstrap_iters", "include_path", "num_fewshot", "max_gen_toks")
              if type_args.get(key) is not None}
    metrics: list[dict[str, Any]] = []
    for task in dict.fromkeys(tasks):
        if task == "size_on_disk":
            metrics.append({"name": "size_on_disk", "type": "size_on_disk", "sub_types": [{"name": "bytes"}]})
            continue
        label = task_label(task)
        config = {**shared, **({"task": task} if label != task else {})}
        metrics.append({"name": label, "type": "lm_eval", "sub_types": [{"name": WILDCARD, "metric_config": config}]})
    return metrics


# ---------------------------------------------------------------------------------------------- offline

@contextmanager
def offline_hub() -> Iterator[None]:
    """HF_DATASETS_OFFLINE / HF_HUB_OFFLINE on (environment and the already imported libraries' flags): nothing
    below tries the network."""
    saved_env = {name: os.environ.get(name) for name in OFFLINE_VARIABLES}
    os.environ.update({name: "1" for name in OFFLINE_VARIABLES})
    import datasets.config
    import huggingface_hub.constants

    flags = [(datasets.config, "HF_HUB_OFFLINE"), (datasets.config, "HF_DATASETS_OFFLINE"),
             (huggingface_hub.constants, "HF_HUB_OFFLINE")]
    saved_flags = [(module, name, getattr(module, name)) for module, name in flags if hasattr(module, name)]
    for module, name, _ in saved_flags:
        setattr(module, name, True)
    try:
        yield
    finally:
        for module, name, value in saved_flags:
            setattr(module, name, value)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _is_missing_data(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says data could not be fetched in offline mode."""
    seen = 0
    while exc is not None and seen < 10:
        name = type(exc).__name__
        text = str(exc)
        if isinstance(exc, ConnectionError) or name in ("OfflineModeIsEnabled", "LocalEntryNotFoundError",
                                                        "DatasetNotFoundError", "DataFilesNotFoundError") \
                or "offline" in text.lower() or "Couldn't reach" in text:
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return False


def hub_only_error(task: str, dataset: str | None, name: str | None) -> EvaluationError:
    data = f"the Hugging Face dataset {dataset}" + (f" (config {name})" if name else "") if dataset \
        else "a dataset from the Hugging Face Hub"
    load = f"datasets.load_dataset('{dataset}'" + (f", '{name}'" if name else "") + ")" if dataset else \
        "datasets.load_dataset(...)"
    return EvaluationError(
        f"lm-eval task {task} needs {data}, which is not on this machine: it is not in the local Hugging Face "
        "datasets cache, and ModelMill evaluates offline (HF_DATASETS_OFFLINE=1, HF_HUB_OFFLINE=1), downloading "
        "nothing",
        fix=f"either put the dataset in the cache (on a machine with internet: `python -c \"import datasets; "
            f"{load}\"`, then copy its ~/.cache/huggingface folder, or HF_HOME, to this machine), or give the task "
            "local data: a task YAML with `dataset_path: json` and `dataset_kwargs: {data_files: ...}`, passed with "
            f"--include_path DIR or as the task itself (--tasks my_task.yaml); see {TASK_DOCS}")


# ---------------------------------------------------------------------------------------------- tasks

def _lm_eval() -> Any:
    try:
        import lm_eval  # noqa: F401
    except ImportError as exc:
        raise EvaluationError("lm-eval tasks need the lm-eval package (the lm-evaluation-harness), which is not "
                              "installed", fix="pip install 'modelmill[benchmark]' (or pip install lm-eval)") from exc
    return sys.modules["lm_eval"]


def _builtin_families(name: str) -> list[Path]:
    """lm-eval's built-in task folders (tasks/<family>) whose YAML files mention ``name``: indexing only those takes
    a moment, where lm-eval's whole index (14,000 YAML files) takes half a minute on a small machine."""
    import lm_eval.tasks

    root = Path(lm_eval.tasks.__file__).parent
    pattern = re.compile(rb"(?<![\w.-])" + re.escape(name.encode()) + rb"(?![\w.-])")
    families: set[Path] = set()
    for path in root.rglob("*.yaml"):
        relative = path.relative_to(root)
        family = root / relative.parts[0] if len(relative.parts) > 1 else None
        if family is None or family in families:
            continue
        try:
            if pattern.search(path.read_bytes()):
                families.add(family)
        except OSError:
            continue
    return sorted(families)


_MANAGERS: dict[tuple[Any, ...], Any] = {}


def _task_manager(include: tuple[str, ...], defaults: bool | tuple[Path, ...]) -> Any:
    """A TaskManager over the user's folders and lm-eval's built-in tasks (all, or only some families); kept for
    the process (indexing is the slow part)."""
    from lm_eval.tasks import TaskManager

    key = (include, defaults)
    if key not in _MANAGERS:
        paths = [*(defaults if isinstance(defaults, tuple) else ()), *include]
        _MANAGERS[key] = TaskManager(include_path=paths or None, include_defaults=defaults is True)
    return _MANAGERS[key]


def _entry_config(entry: Any) -> tuple[Path | None, dict[str, Any]]:
    """(YAML file, config as indexed) of a task index entry, across lm-eval versions."""
    if isinstance(entry, dict):
        path = entry.get("yaml_path")
        return (Path(path) if path and path != -1 else None), {}
    path = getattr(entry, "yaml_path", None)
    return (Path(path) if path else None), dict(getattr(entry, "cfg", None) or {})


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        from lm_eval.tasks._yaml_loader import load_yaml

        return dict(load_yaml(path, resolve_func=True))
    except ImportError:  # lm-eval before 0.4.13
        from lm_eval.utils import load_yaml_config

        return dict(load_yaml_config(str(path)))


def _local_data_files(config: dict[str, Any], folder: Path) -> dict[str, Any] | None:
    """The config with its relative data_files read from ``folder`` (where they exist there), else None."""
    kwargs = config.get("dataset_kwargs")
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if files is None:
        return None

    def fix(value: Any) -> Any:
        if isinstance(value, str) and not Path(value).expanduser().is_absolute() and "://" not in value:
            candidate = folder / value
            if candidate.exists() or any(folder.glob(value)):
                return str(candidate)
            return str(Path.cwd() / value)  # as lm-eval reads it: from the working folder
        if isinstance(value, list):
            return [fix(item) for item in value]
        if isinstance(value, dict):
            return {key: fix(item) for key, item in value.items()}
        return value

    fixed = fix(files)
    if fixed == files:
        return None
    return {**config, "dataset_kwargs": {**kwargs, "data_files": fixed}}


@dataclass
class LoadedTask:
    """What simple_evaluate is given (Task objects, or the spec for a group), the task's name, its dataset."""

    tasks: list[Any]
    name: str
    dataset: tuple[str | None, str | None] = (None, None)


def load_task(options: TaskOptions) -> tuple[LoadedTask, Any]:
    """The task's objects and the TaskManager that knows it, its data read now (offline)."""
    _lm_eval()
    spec: Any = options.task
    include = options.include_path
    yaml_file = Path(spec) if spec.endswith((".yaml", ".yml")) else None
    if yaml_file is not None:
        if not yaml_file.is_file():
            raise EvaluationError(f"task file {yaml_file} does not exist", fix="give the path of an lm-eval task YAML")
        include = (*include, str(yaml_file.parent))
    for folder in include:
        if not Path(folder).is_dir():
            raise EvaluationError(f"include_path {folder} is not a folder",
                                  fix="give a folder of lm-eval task YAML files")
    manager = None
    if include:
        manager = _task_manager(include, False)
    name = task_label(spec) if yaml_file is not None else spec
    known = list(manager.all_tasks) if manager is not None else []
    if manager is None or name not in manager.all_tasks:
        # Every task, group and tag name is written in some task YAML: a name no built-in YAML holds is unknown.
        families = _builtin_families(name)
        manager = _task_manager(include, tuple(families)) if families else None
        if families and name not in manager.all_tasks:
            manager = _task_manager(include, True)  # named in a YAML its own family does not index: all of them
    if manager is None or name not in manager.all_tasks:
        close = difflib.get_close_matches(name, known, n=3)
        raise EvaluationError(f"lm-eval has no task named {name}" + (f" (close: {', '.join(close)})" if close else ""),
                              fix="check the name (`lm-eval ls tasks` lists them), or give a local task: a task YAML "
                                  f"file, or its folder with --include_path (see {TASK_DOCS})")
    yaml_path, indexed = _entry_config(manager.task_index.get(name))
    dataset = (indexed.get("dataset_path"), indexed.get("dataset_name"))
    if yaml_path is not None and indexed.get("task") == name and "class" not in indexed:
        config = _load_yaml(yaml_path)
        dataset = (config.get("dataset_path"), config.get("dataset_name"))
        fixed = _local_data_files(config, yaml_path.parent)
        if fixed is not None:
            spec = fixed
    if not isinstance(spec, dict):
        spec = name
    try:
        loaded = manager.load([spec]) if hasattr(manager, "load") else None
    except Exception as exc:  # noqa: BLE001 - datasets and lm-eval raise many kinds
        raise _task_error(name, dataset, exc) from exc
    if loaded is None:  # lm-eval before 0.4.13
        from lm_eval.tasks import get_task_dict

        try:
            get_task_dict([spec], manager)
        except Exception as exc:  # noqa: BLE001
            raise _task_error(name, dataset, exc) from exc
        return LoadedTask([spec], name, dataset), manager
    if loaded.get("groups"):
        return LoadedTask([spec], name, dataset), manager  # groups aggregate their subtasks: let lm-eval build them
    return LoadedTask(list(loaded["tasks"].values()), name, dataset), manager


def _task_error(name: str, dataset: tuple[str | None, str | None], exc: BaseException) -> EvaluationError:
    path, config = dataset
    if isinstance(exc, FileNotFoundError) and "Unable to find" in str(exc) and path in LOCAL_BUILDERS:
        return EvaluationError(f"lm-eval task {name}: {exc}",
                               fix="check dataset_kwargs.data_files in the task YAML (relative paths are read from "
                                   "the YAML's folder)")
    if _is_missing_data(exc):
        if path is None or path in LOCAL_BUILDERS:
            match = re.search(r"reach '([^']+)'", str(exc))
            path = match.group(1) if match else path
        return hub_only_error(name, path, config)
    return EvaluationError(f"lm-eval could not load task {name}: {type(exc).__name__}: {exc}",
                           fix="check the task's YAML and its data")


# ---------------------------------------------------------------------------------------------- measuring

@dataclass
class TaskScores:
    """One task's numbers: (task, sub type) → value and direction, in lm-eval's order, and lm-eval's results."""

    task: str
    values: dict[tuple[str, str], float] = field(default_factory=dict)
    higher_is_better: dict[tuple[str, str], bool] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


def model_class_for(model: ModelRef, requested: str | None) -> str:
    if requested:
        return requested
    if model.kind == "hf":
        return "hf"
    if model.kind == "onnx":
        return "ortgenai" if model.is_genai else "ort"
    raise EvaluationError(f"lm-eval tasks run Hugging Face folders and ONNX models, not a {model.kind} model",
                          fix="convert the model first")


def _provider(options: TaskOptions, execution_provider: str) -> str:
    if options.device == "cpu":
        return "CPUExecutionProvider"
    if options.device in ("gpu", "cuda") and execution_provider == "CPUExecutionProvider":
        return "CUDAExecutionProvider"
    return execution_provider


_LM: dict[str, Any] = {}


def _lm_for(model: ModelRef, model_class: str, options: TaskOptions, provider: str) -> Any:
    """The lm-eval model, reused by the next task on the same model and settings (loading is the slow part)."""
    from modelmill.evaluate.lm_eval_models import make_lm
    from modelmill.remote_code import is_trusted

    key = json.dumps([str(model.path), model.attributes.get("adapter_path"), model_class, provider,
                      options.batch_size, options.max_length, options.max_gen_toks], default=str)
    if key not in _LM:
        _LM.clear()  # one model at a time in memory
        _LM[key] = make_lm(model, model_class, execution_provider=provider, batch_size=options.batch_size,
                           max_length=options.max_length, max_gen_toks=options.max_gen_toks,
                           trust_remote_code=is_trusted(model))
    return _LM[key]


def _progress(metric: str) -> Callable[[int, int, str], None]:
    """Progress of a task's requests as log lines (every 5% or 10 s; in a run they are ``log`` events)."""
    state = {"at": time.monotonic(), "fraction": 0.0}

    def report(done: int, total: int, kind: str) -> None:
        fraction = done / total if total else 1.0
        now = time.monotonic()
        if fraction < 1.0 and fraction - state["fraction"] < 0.05 and now - state["at"] < 10.0:
            return
        state.update(at=now, fraction=fraction)
        log.info("lm-eval %s: %d/%d %s requests (%.0f%%)", metric, done, total, kind, 100 * fraction)

    return report


def measure(model: ModelRef, metric: str, config: dict[str, Any], *, execution_provider: str = "CPUExecutionProvider",
            base_dir: Path | None = None) -> TaskScores:
    """Score the metric's task on ``model`` with lm-eval (offline); raises EvaluationError."""
    options = task_options(metric, config, base_dir)
    model_class = model_class_for(model, options.model_class)
    provider = _provider(options, execution_provider)
    with offline_hub():
        task, manager = load_task(options)
        lm = _lm_for(model, model_class, options, provider)
        lm.progress = _progress(metric)
        from lm_eval import simple_evaluate

        try:
            results = simple_evaluate(model=lm, tasks=task.tasks, num_fewshot=options.num_fewshot,
                                      batch_size=options.batch_size, limit=options.limit,
                                      bootstrap_iters=options.bootstrap_iters, log_samples=False,
                                      task_manager=manager)
        except EvaluationError:
            raise
        except Exception as exc:  # noqa: BLE001 - lm-eval and the runtimes raise many kinds
            if _is_missing_data(exc):
                raise hub_only_error(task.name, *task.dataset) from exc
            raise EvaluationError(f"lm-eval task {task.name} failed on {model.path}: {type(exc).__name__}: {exc}",
                                  fix="see the run's log for lm-eval's messages") from exc
        finally:
            lm.progress = None
    if not results:
        raise EvaluationError(f"lm-eval returned no results for {task.name}", fix="see the run's log")
    return scores_of(metric, task.name, _json_safe(results), model_class)


def _json_safe(results: Any) -> dict[str, Any]:
    from lm_eval.utils import handle_non_serializable

    data = dict(results)
    data.pop("samples", None)
    return json.loads(json.dumps(data, default=handle_non_serializable))


def scores_of(metric: str, task: str, results: dict[str, Any], model_class: str) -> TaskScores:
    """The numbers of lm-eval's results: the requested task's under ``metric``, its subtasks' under their names."""
    scores = TaskScores(task=task, results={**results, "modelmill": {"metric": metric, "task": task,
                                                                     "model_class": model_class}})
    directions = results.get("higher_is_better") or {}
    entries = results.get("results") or {}
    ordered = [task, *(name for name in entries if name != task)]
    for name in ordered:
        declared = directions.get(name) or {}  # the task's metrics; results also hold alias, name, sample_len
        for key, value in (entries.get(name) or {}).items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            measure_name, _, filter_name = key.partition(",")
            if measure_name.endswith("_stderr") or measure_name in NOT_METRICS or \
                    (declared and measure_name not in declared):
                continue
            if not math.isfinite(float(value)):
                continue
            sub = measure_name if filter_name in ("", "none") else f"{measure_name},{filter_name}"
            label = metric if name == task else name
            scores.values[(label, sub)] = float(value)
            higher = (directions.get(name) or {}).get(measure_name)
            if higher is None:
                higher = not any(word in measure_name for word in ("perplexity", "bits_per_byte"))
            scores.higher_is_better[(label, sub)] = bool(higher)
    if not any(label == metric for label, _ in scores.values):
        raise EvaluationError(f"lm-eval reported no numbers for task {task}",
                              fix="check the task's metric_list (and --limit: a task needs at least one sample)")
    return scores


def pick(scores: TaskScores, metric: str, sub_type: str) -> tuple[str, float, bool]:
    """A named sub type of the task's own numbers: exact, or the first filter of that metric."""
    own = {sub: value for (label, sub), value in scores.values.items() if label == metric}
    name = sub_type if sub_type in own else next((sub for sub in own if sub.partition(",")[0] == sub_type), None)
    if name is None:
        raise EvaluationError(f"lm_eval metric {metric}: task {scores.task} reports no {sub_type}",
                              fix=f"use one of: {', '.join(own)} (or * for all)")
    return name, own[name], scores.higher_is_better[(metric, name)]


def merge_results(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several tasks' lm-eval results as one, shaped as lm-eval writes them (results, configs, versions, ...)."""
    merged: dict[str, Any] = {}
    for result in results:
        for key, value in result.items():
            if isinstance(value, dict) and key not in ("config", "modelmill"):
                merged.setdefault(key, {}).update(value)
            elif key == "modelmill":
                merged.setdefault("modelmill", []).append(value)
            else:
                merged.setdefault(key, value)
    return merged


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, float, float | None, int | None]]:
    """(task, metric, value, stderr, samples) for each number of lm-eval's results, as lm-eval's table shows."""
    rows = []
    samples = results.get("n-samples") or {}
    directions = results.get("higher_is_better") or {}
    for task, entries in (results.get("results") or {}).items():
        declared = directions.get(task) or {}
        for key, value in entries.items():
            name, _, filter_name = key.partition(",")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or name.endswith("_stderr") \
                    or name in NOT_METRICS or (declared and name not in declared):
                continue
            stderr = entries.get(f"{name}_stderr,{filter_name}" if filter_name else f"{name}_stderr")
            count = (samples.get(task) or {}).get("effective")
            rows.append((task, name if filter_name in ("", "none") else key, float(value),
                         float(stderr) if isinstance(stderr, (int, float)) else None,
                         int(count) if isinstance(count, int) else None))
    return rows
