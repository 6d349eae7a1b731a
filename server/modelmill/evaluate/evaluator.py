"""evaluate_model: measure a config's metrics on one model and emit a ``metric.measured`` event per value.

Metrics may be the config's ``Metric`` models or plain dicts of the same shape; dicts may use
ModelMill's extra metric types (``llm``, ``memory``, ``similarity``; see ``catalog.CATALOG``).
Sub types sharing a metric_config are measured together (one latency run serves avg, p90, ...).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelmill.engine.model import ModelRef
from modelmill.evaluate.catalog import (CATALOG, HF_EVALUATE_SUB_TYPES, MEASURED_SUB_TYPES, METRIC_TYPES,
                                        default_higher_is_better, unit_of)
from modelmill.evaluate.results import EvaluationResult, MetricValue
from modelmill.evaluate.runtime import EvaluationError

if TYPE_CHECKING:
    from modelmill.config.evaluation import Metric

Emit = Callable[..., Any]


@dataclass
class SubSpec:
    name: str
    priority: int = -1
    higher_is_better: bool | None = None
    goal: dict[str, Any] | None = None
    metric_config: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricSpec:
    name: str
    type: str
    sub_types: list[SubSpec]
    data_config: str | dict[str, Any] | None = None
    user_config: dict[str, Any] = field(default_factory=dict)
    backend: str = "torch_metrics"

    def measured_name(self, sub_type: str) -> str:
        """The ModelMill sub type that measures ``sub_type`` (an `evaluate` name under huggingface_metrics)."""
        if self.type == "accuracy" and self.backend == "huggingface_metrics":
            return HF_EVALUATE_SUB_TYPES.get(sub_type, sub_type)
        return sub_type


def _plain(obj: Any) -> Any:
    """A pydantic model (or anything with model_dump) as a plain dict; dicts and None pass through."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json", exclude_none=True)
    if isinstance(obj, Mapping):
        return dict(obj)
    raise TypeError(f"cannot read a metric from {type(obj).__name__}")


def metric_spec(metric: "Metric | Mapping[str, Any]") -> MetricSpec:
    data = _plain(metric)
    metric_type = str(data.get("type"))
    name = str(data.get("name") or metric_type)
    if metric_type not in METRIC_TYPES:
        raise EvaluationError(f"metric {name}: unknown type {metric_type!r}",
                              fix=f"use one of {', '.join(METRIC_TYPES)}")
    subs = []
    for sub in data.get("sub_types") or []:
        sub = _plain(sub)
        goal = _plain(sub.get("goal"))
        subs.append(SubSpec(name=str(sub["name"]), priority=int(sub.get("priority", -1)),
                            higher_is_better=sub.get("higher_is_better"), goal=goal,
                            metric_config=dict(sub.get("metric_config") or {})))
    if not subs:
        raise EvaluationError(f"metric {name} has no sub_types", fix='add "sub_types": [{"name": ...}]')
    measured = MEASURED_SUB_TYPES.get(metric_type)
    backend = str(data.get("backend") or "torch_metrics")
    hf_metrics = metric_type == "accuracy" and backend == "huggingface_metrics"
    for sub in subs:
        if hf_metrics and sub.name not in HF_EVALUATE_SUB_TYPES:
            raise EvaluationError(f"metric {name}: the huggingface_metrics sub type {sub.name} is not measured by "
                                  "modelmill (Olive loads it with evaluate.load, from the hub)",
                                  fix=f"use one of: {', '.join(HF_EVALUATE_SUB_TYPES)}")
        if hf_metrics:
            continue
        if measured is not None and sub.name not in measured:
            known = sub.name in CATALOG.get(metric_type, {})
            raise EvaluationError(f"metric {name}: sub type {sub.name} " +
                                  ("is not measured by modelmill" if known else f"is not a {metric_type} sub type"),
                                  fix=f"use one of: {', '.join(measured)}")
    if metric_type == "lm_eval":
        from modelmill.evaluate.lm_eval_bridge import WILDCARD

        for sub in subs:
            if sub.name == WILDCARD and (sub.priority >= 1 or sub.goal):
                raise EvaluationError(f"metric {name}: sub type {WILDCARD} (every number of the task) cannot be "
                                      "ranked or have a goal", fix="name the sub type to rank, e.g. acc")
    return MetricSpec(name=name, type=metric_type, sub_types=subs, data_config=_plain(data.get("data_config")),
                      user_config=dict(_plain(data.get("user_config")) or {}), backend=backend)


def _groups(spec: MetricSpec) -> list[tuple[dict[str, Any], list[SubSpec]]]:
    """Sub types grouped by identical metric_config, in first-seen order."""
    groups: dict[str, tuple[dict[str, Any], list[SubSpec]]] = {}
    for sub in spec.sub_types:
        key = json.dumps(sub.metric_config, sort_keys=True, default=str)
        groups.setdefault(key, (sub.metric_config, []))[1].append(sub)
    return list(groups.values())


@dataclass
class _Run:
    model: ModelRef
    data_configs: dict[str, dict[str, Any]]
    reference: ModelRef | None
    base_dir: Path | None
    execution_provider: str
    lm_eval_results: list[dict[str, Any]] = field(default_factory=list)

    def data_config(self, spec: MetricSpec, required: bool) -> dict[str, Any] | None:
        ref = spec.data_config
        if ref is None:
            if required:
                raise EvaluationError(f"metric {spec.name} ({spec.type}) needs a data_config",
                                      fix="add a data_configs entry with local labelled data and name it in the metric")
            return None
        if isinstance(ref, str):
            if ref not in self.data_configs:
                known = ", ".join(self.data_configs) or "none"
                raise EvaluationError(f"metric {spec.name}: data_config {ref!r} is not defined",
                                      fix=f"define it under data_configs (known: {known})")
            return dict(self.data_configs[ref])
        return dict(ref)

    def measure(self, spec: MetricSpec, config: dict[str, Any], subs: list[SubSpec]) -> dict[str, float]:
        names = [sub.name for sub in subs]
        ep = self.execution_provider
        if spec.type in ("latency", "throughput"):
            from modelmill.evaluate import latency

            timings = latency.measure(self.model, config, execution_provider=ep,
                                      data_config=self.data_config(spec, required=False))
            pick = timings.latency if spec.type == "latency" else timings.throughput
            return {name: pick(name) for name in names}
        if spec.type == "size_on_disk":
            from modelmill.evaluate.size import size_on_disk

            return {name: float(size_on_disk(self.model)) for name in names}
        if spec.type == "custom":
            from modelmill.evaluate.custom import run_custom

            return run_custom(self.model, spec.name, names, spec.user_config, self.base_dir)
        if spec.type == "memory":
            from modelmill.evaluate.memory import peak_memory_mb

            return {name: peak_memory_mb(self.model, config, execution_provider=ep) for name in names}
        if spec.type == "similarity":
            return self._similarity(config, names)
        if spec.type in ("accuracy", "llm"):
            return self._accuracy_or_llm(spec, config, names)
        raise EvaluationError(f"metric type {spec.type} is not supported", fix="remove the metric")

    def lm_eval(self, spec: MetricSpec) -> list[MetricValue]:
        """An lm-eval task: the named sub types, or (``*``) every number the task and its subtasks report. The task
        runs once: its options are the sub types' metric_config (given on one of them, or the same on each)."""
        from modelmill.evaluate import lm_eval_bridge as bridge

        configs = [config for config, _ in _groups(spec) if config]
        if any(config != configs[0] for config in configs):
            raise EvaluationError(f"lm_eval metric {spec.name}: its sub types have different metric_config, and a "
                                  "task runs once for all of them", fix="give the options on one sub type, or the "
                                                                         "same on each")
        config = configs[0] if configs else {}
        subs = spec.sub_types
        scores = bridge.measure(self.model, spec.name, config, execution_provider=self.execution_provider,
                                base_dir=self.base_dir)
        self.lm_eval_results.append(scores.results)
        values: dict[str, MetricValue] = {}
        for sub in subs:
            if sub.name == bridge.WILDCARD:
                picked = [(label, name, value, scores.higher_is_better[(label, name)])
                          for (label, name), value in scores.values.items()]
            else:
                name, value, higher = bridge.pick(scores, spec.name, sub.name)
                picked = [(spec.name, name, value, higher)]
            for label, name, value, higher in picked:
                if sub.name == bridge.WILDCARD and f"{label}-{name}" in values:
                    continue  # a named sub type of the same number keeps its priority and goal
                directed = higher if sub.higher_is_better is None else bool(sub.higher_is_better)
                values[f"{label}-{name}"] = MetricValue(metric=label, sub_type=name, value=value, unit="",
                                                        higher_is_better=directed, priority=sub.priority,
                                                        goal=sub.goal, metric_type=spec.type)
        return list(values.values())

    def _similarity(self, config: dict[str, Any], names: list[str]) -> dict[str, float]:
        from modelmill.evaluate import similarity

        out: dict[str, float] = {}
        if {"cosine_mean", "cosine_min"} & set(names):
            out.update(similarity.cosine_similarity(self.model, self.reference, config,
                                                    execution_provider=self.execution_provider))
        if "samples_per_s" in names:
            out["samples_per_s"] = similarity.encoder_throughput(self.model, config,
                                                                 execution_provider=self.execution_provider)
        return {name: out[name] for name in names}

    def _accuracy_or_llm(self, spec: MetricSpec, config: dict[str, Any], asked: list[str]) -> dict[str, float]:
        from modelmill.evaluate import llm

        names = [spec.measured_name(name) for name in asked]
        out: dict[str, float] = {}
        data_config = self.data_config(spec, required=spec.type == "accuracy" and names != ["perplexity"])
        if "perplexity" in names:
            texts = None
            if data_config is not None:
                from modelmill.evaluate.accuracy import local_texts_of

                texts = local_texts_of(data_config, self.base_dir)
            out["perplexity"] = llm.perplexity(self.model, config, texts=texts,
                                               execution_provider=self.execution_provider)
        if {"prefill_ms", "decode_tokens_per_s"} & set(names):
            speed = llm.generation_speed(self.model, config, execution_provider=self.execution_provider)
            out["prefill_ms"], out["decode_tokens_per_s"] = speed.prefill_ms, speed.decode_tokens_per_s
        if set(names) - {"perplexity", "prefill_ms", "decode_tokens_per_s"}:
            from modelmill.evaluate.accuracy import evaluate_classification

            assert data_config is not None
            out.update(evaluate_classification(self.model, data_config, config, base_dir=self.base_dir,
                                               execution_provider=self.execution_provider))
        return {name: out[spec.measured_name(name)] for name in asked}


COMPOSITE_METRICS = ("size_on_disk", "custom")
"""Metric types that measure a composite model (SplitModel's output): its files, or the user's own code."""


def evaluate_model(model: ModelRef, metrics: "list[Metric] | list[Mapping[str, Any]]", *,
                   emit: Emit | None = None, data_configs: dict[str, dict[str, Any]] | None = None,
                   reference: ModelRef | None = None, base_dir: Path | None = None,
                   execution_provider: str = "CPUExecutionProvider") -> EvaluationResult:
    """Measure every sub type of every metric on ``model``.

    - ``emit``: called as ``emit("metric.measured", metric=, sub_type=, key=, value=, unit=, model=)`` per value
      (EventBus.emit fits).
    - ``data_configs``: name → data config dict, for metrics that name theirs.
    - ``reference``: the PyTorch (HF) reference model for similarity metrics.
    - ``base_dir``: the config's folder; user scripts and data files are relative to it.
    Raises EvaluationError (a ModelMillError) when a metric cannot be measured.
    """
    started = time.perf_counter()
    specs = [metric_spec(metric) for metric in metrics]
    if model.kind == "composite":  # SplitModel's parts: only what needs no session of the whole model
        for spec in specs:
            if spec.type not in COMPOSITE_METRICS:
                files = ", ".join(c.onnx_file for c in model.components)
                raise EvaluationError(f"metric {spec.name} ({spec.type}) cannot run on the composite model at "
                                      f"{model.path} ({files}): only {', '.join(COMPOSITE_METRICS)} measure one",
                                      fix="add ComposeOnnxModels after SplitModel to measure the composed model, "
                                          "or evaluate the model before SplitModel")
    run = _Run(model, dict(data_configs or {}), reference, Path(base_dir) if base_dir is not None else None,
               execution_provider)
    values: list[MetricValue] = []
    for spec in specs:
        if spec.type == "lm_eval":  # one lm-eval run per task, whatever its sub types
            for value in run.lm_eval(spec):
                values.append(value)
                if emit is not None:
                    emit("metric.measured", metric=value.metric, sub_type=value.sub_type, key=value.key,
                         value=value.value, unit=value.unit, model=str(model.path))
            continue
        for config, subs in _groups(spec):
            measured = run.measure(spec, config, subs)
            for sub in subs:
                higher = default_higher_is_better(spec.type, sub.name) if sub.higher_is_better is None \
                    else bool(sub.higher_is_better)
                if spec.type == "size_on_disk":
                    higher = False  # Olive forces this
                value = MetricValue(metric=spec.name, sub_type=sub.name, value=float(measured[sub.name]),
                                    unit=unit_of(spec.type, sub.name), higher_is_better=higher,
                                    priority=sub.priority, goal=sub.goal, metric_type=spec.type)
                values.append(value)
                if emit is not None:
                    emit("metric.measured", metric=spec.name, sub_type=sub.name, key=value.key, value=value.value,
                         unit=value.unit, model=str(model.path))
    details: dict[str, Any] = {}
    if run.lm_eval_results:
        from modelmill.evaluate.lm_eval_bridge import merge_results

        details["lm_eval"] = merge_results(run.lm_eval_results)
    return EvaluationResult(model_path=str(model.path), values=values, duration_s=time.perf_counter() - started,
                            model_kind=model.kind, details=details)
