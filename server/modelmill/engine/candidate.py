"""One search candidate: the job (its pass chain), running it with its evaluation, and what it produced.

The same ``execute_candidate`` runs in this process or in a Ray task; evaluations are cached by model key
and metric spec in the shared cache folder, so every worker reuses them.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from modelmill.contracts import CandidateStartedEvent, EvaluationStartedEvent, MetricMeasuredEvent
from modelmill.engine.cache import FINGERPRINTS, Cache
from modelmill.engine.chain import Chain
from modelmill.engine.data_inputs import metrics_data_context
from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef
from modelmill.engine.output import write_atomic
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.versions import library_versions
from modelmill.errors import ModelMillError, PassError


class CandidateFailed(ModelMillError):
    """A candidate that could not be finished, e.g. lost on a cluster more often than allowed: it is reported
    and the search goes on, like a candidate whose pass rejected its parameters."""


# What ends one candidate but not the search.
CANDIDATE_FAILURES = (PassError, ValidationError, CandidateFailed)


@dataclass
class CandidateJob:
    """One candidate to run: what a worker (this process or a Ray task) needs."""

    id: str
    params: dict[str, Any]
    steps: list[PlanStep]
    attempt: int = 1


@dataclass
class CandidateOutcome:
    """What running a candidate produced, wherever it ran."""

    model: ModelRef
    cache_keys: list[str]
    entry: Any  # CacheEntry of the last pass
    records: list[Any]
    evaluation: Any
    duration_s: float
    node: str | None = None


def evaluate_cached(plan: Plan, cache: Cache, bus: EventBus, model: ModelRef, model_key: str, label: str) -> Any:
    """Evaluate ``model`` with the plan's metrics, through the evaluation cache (shared by all workers)."""
    from modelmill.evaluate import EvaluationResult, evaluate_model

    metrics = plan.metrics or []
    spec = json.dumps([m.model_dump(mode="json") for m in metrics], sort_keys=True)
    # The metrics' data (the configs they name and their files' content): edited evaluation data is measured again.
    data = metrics_data_context(metrics, plan.data_configs, cache.root / FINGERPRINTS)
    data_part = f"\0{json.dumps(data, sort_keys=True, default=str)}" if data else ""
    key = hashlib.sha256(f"{model_key}\0{spec}\0{json.dumps(library_versions())}\0"
                         f"{plan.accelerator}{data_part}".encode()).hexdigest()[:32]
    stored = cache.root / "evaluations" / f"{key}.json"
    # An lm-eval task reads data the config does not hold (a task YAML and its files can change between runs):
    # measured every time, never read from the cache.
    cacheable = not any(getattr(metric, "type", None) == "lm_eval" for metric in metrics)
    if cacheable and stored.exists():
        try:
            result = EvaluationResult.from_json(json.loads(stored.read_text()))
            for value in result.values:
                bus.emit(MetricMeasuredEvent(candidate=label, cached=True, **_value_fields(value)))
            return result
        except (ValueError, KeyError):
            stored.unlink(missing_ok=True)

    def emit(type_: str, **data: Any) -> None:
        bus.emit(type_, candidate=label, **data)

    bus.emit(EvaluationStartedEvent(candidate=label, metrics=[f"{m.name}-{s.name}" for m in metrics
                                                              for s in m.sub_types]))
    result = evaluate_model(model, metrics, emit=emit, data_configs=plan.data_configs,
                            reference=plan.input_model if plan.input_model.kind == "hf" else None,
                            base_dir=plan.base_dir, execution_provider=plan.accelerator.execution_provider)
    if cacheable:
        write_atomic(stored, json.dumps(result.to_json()))
    return result


def execute_candidate(plan: Plan, chain: Chain, bus: EventBus, job: CandidateJob) -> CandidateOutcome:
    """Run a candidate's pass chain and evaluate its output: the unit of work, local or on a Ray worker."""
    bus.emit(CandidateStartedEvent(candidate=job.id, params=job.params,
                                   attempt=job.attempt if job.attempt > 1 else None))
    start = time.perf_counter()
    model, keys = chain(job.steps, job.id)
    evaluation = evaluate_cached(plan, chain.cache, bus, model, keys[-1], job.id) if plan.metrics else None
    return CandidateOutcome(model, keys, chain.last_entry, list(chain.records), evaluation,
                            round(time.perf_counter() - start, 3))


def _value_fields(value: Any) -> dict[str, Any]:
    data = value.to_json()
    return {"metric": data["metric"], "sub_type": data["sub_type"], "key": data["key"], "value": data["value"],
            "unit": data["unit"]}
