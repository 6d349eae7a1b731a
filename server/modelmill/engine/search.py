"""Search over pass parameters with Optuna, evaluating every candidate; also plain evaluated runs.

The search space is what the config marks searchable: a list of values (or "SEARCHABLE_VALUES",
or a SearchParameter) for a parameter the pass declares searchable. Candidates share the pass
cache, so common prefixes run once and a rerun costs only cache look-ups; evaluation results
are cached by model and metric spec too.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from modelmill.engine.cache import Cache
from modelmill.engine.events import EventBus
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.versions import library_versions
from modelmill.errors import PassError


@dataclass
class SearchSpace:
    """Searched parameters: (step index, parameter) → the values to try."""

    dimensions: dict[tuple[int, str], list[Any]] = field(default_factory=dict)

    def optuna_name(self, step: PlanStep, param: str) -> str:
        return f"{step.name}.{param}"

    def size(self) -> int:
        size = 1
        for values in self.dimensions.values():
            size *= len(values)
        return size

    def for_steps(self, indices: set[int]) -> "SearchSpace":
        return SearchSpace({k: v for k, v in self.dimensions.items() if k[0] in indices})


@dataclass
class Candidate:
    id: str
    params: dict[str, Any]  # "pass.param" → value
    steps: list[PlanStep]
    model: ModelRef | None = None
    evaluation: Any = None  # EvaluationResult
    accepted: bool = True
    duration_s: float = 0.0
    cache_keys: list[str] = field(default_factory=list)
    entry: Any = None  # the CacheEntry of its last pass
    records: list[Any] = field(default_factory=list)  # PassRecords of its chain

    def metrics(self) -> dict[str, float | None]:
        return self.evaluation.to_json()["metrics"] if self.evaluation is not None else {}

    def footprint(self) -> dict[str, Any]:
        return {"id": self.id, "params": self.params, "accepted": self.accepted, "duration_s": self.duration_s,
                "passes": [s.describe() for s in self.steps], "metrics": self.metrics(),
                "cache_keys": self.cache_keys}


def substitute(steps: list[PlanStep], space: SearchSpace, choice: dict[tuple[int, str], Any]) -> list[PlanStep]:
    """The steps with the chosen values put into their parameters (validated by each Params model)."""
    result = []
    for index, step in enumerate(steps):
        updates = {param: value for (i, param), value in choice.items() if i == index}
        if updates:
            params = step.pass_cls.Params.model_validate({**step.params.model_dump(), **updates})
            step = replace(step, params=params)
        result.append(step)
    return result


def make_sampler(name: str, space: dict[str, list[Any]], seed: int, multivariate: bool) -> Any:
    import optuna

    if name == "sequential":
        return optuna.samplers.GridSampler(space, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=multivariate, n_startup_trials=min(4, max(1, len(space))))


class Search:
    """Runs candidates, evaluates them, and picks the best; all reporting goes through ``bus``."""

    def __init__(self, plan: Plan, bus: EventBus, cancel: threading.Event, run_chain: Any) -> None:
        self.plan, self.bus, self.cancel = plan, bus, cancel
        self.run_chain = run_chain
        self.cache = Cache(plan.cache_dir)
        self.candidates: list[Candidate] = []
        self.baseline: Any = None
        self._seen: dict[str, Candidate] = {}
        self.failures: list[Exception] = []

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model: ModelRef, model_key: str, label: str) -> Any:
        from modelmill.evaluate import EvaluationResult, evaluate_model

        metrics = self.plan.metrics or []
        spec = json.dumps([m.model_dump(mode="json") for m in metrics], sort_keys=True)
        key = hashlib.sha256(f"{model_key}\0{spec}\0{json.dumps(library_versions())}\0"
                             f"{self.plan.accelerator}".encode()).hexdigest()[:32]
        stored = self.cache.root / "evaluations" / f"{key}.json"
        if stored.exists():
            try:
                result = EvaluationResult.from_json(json.loads(stored.read_text()))
                for value in result.values:
                    self.bus.emit("metric.measured", candidate=label, cached=True, **_value_fields(value))
                return result
            except (ValueError, KeyError):
                stored.unlink(missing_ok=True)

        def emit(type_: str, **data: Any) -> None:
            self.bus.emit(type_, candidate=label, **data)

        self.bus.emit("evaluation.started", candidate=label,
                      metrics=[f"{m.name}-{s.name}" for m in metrics for s in m.sub_types])

        result = evaluate_model(model, metrics, emit=emit, data_configs=self.plan.data_configs,
                                reference=self.plan.input_model if self.plan.input_model.kind == "hf" else None,
                                base_dir=self.plan.base_dir,
                                execution_provider=self.plan.accelerator.execution_provider)
        stored.parent.mkdir(parents=True, exist_ok=True)
        tmp = stored.with_suffix(".tmp")
        tmp.write_text(json.dumps(result.to_json()))
        tmp.replace(stored)
        return result

    # --- candidates -------------------------------------------------------------------------

    def run_candidate(self, steps: list[PlanStep], params: dict[str, Any]) -> Candidate:
        from modelmill.evaluate import accepted

        signature = json.dumps(params, sort_keys=True, default=str)
        if signature in self._seen:  # samplers may propose a point twice: it costs nothing the second time
            return self._seen[signature]
        candidate = Candidate(id=f"c{len(self.candidates) + 1}", params=params, steps=steps)
        self.bus.emit("candidate.started", candidate=candidate.id, params=params)
        start = time.perf_counter()
        candidate.model, candidate.cache_keys = self.run_chain(steps, candidate.id)
        candidate.entry, candidate.records = self.run_chain.last_entry, list(self.run_chain.records)
        if self.plan.metrics:
            candidate.evaluation = self.evaluate(candidate.model, candidate.cache_keys[-1], candidate.id)
            candidate.accepted = accepted(candidate.evaluation, self.baseline)
        candidate.duration_s = round(time.perf_counter() - start, 3)
        self.candidates.append(candidate)
        self._seen[signature] = candidate
        self.bus.emit("candidate.evaluated", candidate=candidate.id, params=params, metrics=candidate.metrics(),
                      accepted=candidate.accepted, duration_s=candidate.duration_s)
        return candidate

    def objective(self, candidate: Candidate) -> list[float]:
        from modelmill.evaluate import objective

        return objective(candidate.evaluation) if candidate.evaluation is not None else [0.0]

    # --- strategies -------------------------------------------------------------------------

    def run(self, space: SearchSpace) -> Candidate:
        strategy = self.plan.search or {}
        if self.plan.metrics and self.plan.evaluate_input_model:
            from modelmill.engine.workflow import input_key

            self.baseline = self.evaluate(self.plan.input_model, input_key(self.plan, self.cache), "input")
            self.bus.emit("candidate.evaluated", candidate="input", params={}, metrics=self.baseline.to_json()["metrics"],
                          accepted=True, duration_s=self.baseline.duration_s, is_input=True)
        if not strategy or not space.dimensions:
            self.run_candidate(self.plan.steps, {})
        elif strategy.get("execution_order") == "pass-by-pass":
            self._pass_by_pass(space, strategy)
        else:
            self._optuna(self.plan.steps, space, strategy, deadline=_deadline(strategy))
        return self.best()

    def _pass_by_pass(self, space: SearchSpace, strategy: dict[str, Any]) -> None:
        steps = list(self.plan.steps)
        chosen: dict[str, Any] = {}
        for index in range(len(steps)):
            sub = space.for_steps({index})
            if not sub.dimensions:
                continue
            best = self._optuna(steps, sub, strategy, deadline=None, base_params=chosen)
            steps, chosen = best.steps, dict(best.params)  # fix this pass at its best values, tune the next one

    def _optuna(self, steps: list[PlanStep], space: SearchSpace, strategy: dict[str, Any],
                deadline: float | None, base_params: dict[str, Any] | None = None) -> Candidate:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        names = {space.optuna_name(steps[i], p): (i, p) for (i, p) in space.dimensions}
        choices = {name: space.dimensions[key] for name, key in names.items()}
        sampler = make_sampler(strategy.get("sampler", "tpe"), choices, int(strategy.get("seed", 1)),
                               bool(strategy.get("multivariate", True)))
        directions = ["minimize"] * max(1, len(self._probe_objective()))
        study = optuna.create_study(sampler=sampler, directions=directions)
        budget = int(strategy.get("max_samples") or 0) or int(strategy.get("max_iter") or 0) or space.size()
        budget = min(budget, space.size()) if strategy.get("sampler") == "sequential" else budget
        local: list[Candidate] = []

        def objective(trial: Any) -> Any:
            choice = {names[name]: trial.suggest_categorical(name, values) for name, values in choices.items()}
            params = {**(base_params or {}), **{name: choice[names[name]] for name in choices}}
            try:
                candidate = self.run_candidate(substitute(steps, space, choice), params)
            except (PassError, ValidationError) as exc:
                # One bad combination (e.g. a quantizer with nothing left to quantize) must not end the search.
                self.failures.append(exc)
                self.bus.emit("candidate.failed", params=params, message=getattr(exc, "message", str(exc)),
                              fix=getattr(exc, "fix", None))
                raise optuna.TrialPruned() from exc
            local.append(candidate)
            values = self.objective(candidate)
            if self.cancel.is_set() or (strategy.get("stop_when_goals_met") and candidate.accepted
                                        and candidate.evaluation is not None
                                        and any(v.goal for v in candidate.evaluation.values)):
                trial.study.stop()
            return values if len(directions) > 1 else values[0]

        timeout = max(0.0, deadline - time.monotonic()) if deadline is not None else None
        # optimize() rather than ask/tell: GridSampler stops the study itself when the grid is exhausted.
        study.optimize(objective, n_trials=budget, timeout=timeout, catch=())
        if self.cancel.is_set():
            from modelmill.engine.workflow import RunCancelled

            raise RunCancelled()
        return self.best(local)

    def _probe_objective(self) -> list[float]:
        """How many objectives the metrics define (priority >= 1), without measuring anything."""
        ranked = [s for m in (self.plan.metrics or []) for s in m.sub_types if s.priority >= 1]
        return [0.0] * max(1, len(ranked))

    # --- results ----------------------------------------------------------------------------

    def best(self, pool: list[Candidate] | None = None) -> Candidate:
        """Lexicographically best by metric priority among accepted candidates (all, if none is accepted)."""
        pool = pool if pool is not None else self.candidates
        if not pool:
            if self.failures and not self.cancel.is_set():
                raise self.failures[-1]
            from modelmill.engine.workflow import RunCancelled

            raise RunCancelled()
        accepted = [c for c in pool if c.accepted] or pool
        if len(accepted) < len(pool) and not any(c.accepted for c in pool):
            self.bus.emit("warning", message="no candidate met every goal; keeping the best one anyway")
        return min(accepted, key=self.objective)

    def pareto_front(self) -> list[Candidate]:
        """Candidates no other candidate beats on every measured ranked metric."""
        scored = [(c, self.objective(c)) for c in self.candidates if c.evaluation is not None]
        front = []
        for candidate, score in scored:
            dominated = any(all(o <= s for o, s in zip(other, score)) and any(o < s for o, s in zip(other, score))
                            for _, other in scored)
            if not dominated:
                front.append(candidate)
        return front


def _value_fields(value: Any) -> dict[str, Any]:
    data = value.to_json()
    return {"metric": data["metric"], "sub_type": data["sub_type"], "key": data["key"], "value": data["value"],
            "unit": data["unit"]}


def _deadline(strategy: dict[str, Any]) -> float | None:
    max_time = strategy.get("max_time")
    return time.monotonic() + float(max_time) if max_time else None


__all__ = ["Search", "SearchSpace", "Candidate", "substitute"]
