"""Search over pass parameters with Optuna, evaluating every candidate; also plain evaluated runs.

The search space is what the config marks searchable: a list of values (or "SEARCHABLE_VALUES",
or a SearchParameter) for a parameter the pass declares searchable. Candidates share the pass
cache, so common prefixes run once and a rerun costs only cache look-ups; evaluation results
are cached by model and metric spec too.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from modelmill.contracts import CandidateEvaluatedEvent, CandidateFailedEvent, WarningEvent
from modelmill.engine.cache import Cache
from modelmill.engine.candidate import CANDIDATE_FAILURES, CandidateJob, CandidateOutcome, evaluate_cached
from modelmill.engine.chain import input_key
from modelmill.engine.events import EventBus
from modelmill.engine.executors import Executor
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep, SearchSpace
from modelmill.errors import RunCancelled


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
        return _grid_sampler_class()(space, seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=multivariate, n_startup_trials=min(4, max(1, len(space))))


def _grid_sampler_class() -> Any:
    import optuna

    class AskTellGridSampler(optuna.samplers.GridSampler):
        """GridSampler stops the study when the grid is exhausted, which only works inside optimize();
        with ask/tell the search stops asking by itself (its budget is at most the grid's size)."""

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    return AskTellGridSampler



class Search:
    """Runs candidates, evaluates them, and picks the best; all reporting goes through ``bus``.

    Candidates go to an executor: this process, or a Ray cluster (``plan.cluster``) that runs several at
    once. Optuna is driven by ask/tell so that several candidates can be in flight; the proposals depend
    only on the config (sampler, seed, batch size), never on which worker finishes first.
    """

    def __init__(self, plan: Plan, bus: EventBus, cancel: threading.Event, executor: Executor) -> None:
        self.plan, self.bus, self.cancel, self.executor = plan, bus, cancel, executor
        self.cache = Cache(plan.cache_dir)
        self.candidates: list[Candidate] = []
        self.baseline: Any = None
        self._seen: dict[str, Candidate] = {}
        self._numbers = itertools.count(1)
        self.failures: list[Exception] = []

    # --- evaluation -------------------------------------------------------------------------

    def evaluate(self, model: ModelRef, model_key: str, label: str) -> Any:
        return evaluate_cached(self.plan, self.cache, self.bus, model, model_key, label)

    # --- candidates -------------------------------------------------------------------------

    def _job(self, steps: list[PlanStep], params: dict[str, Any]) -> CandidateJob:
        return CandidateJob(id=f"c{next(self._numbers)}", params=params, steps=steps)

    def _finish(self, job: CandidateJob, result: CandidateOutcome | BaseException) -> Candidate:
        """Record a finished candidate (or raise what it failed with)."""
        from modelmill.evaluate import accepted

        if isinstance(result, BaseException):
            raise result
        candidate = Candidate(id=job.id, params=job.params, steps=job.steps, model=result.model,
                              evaluation=result.evaluation, duration_s=result.duration_s,
                              cache_keys=result.cache_keys, entry=result.entry, records=result.records)
        if result.evaluation is not None:
            candidate.accepted = accepted(result.evaluation, self.baseline)
        self.candidates.append(candidate)
        self.candidates.sort(key=lambda c: int(c.id[1:]))  # ask order, whatever order they finished in
        self._seen[_signature(job.params)] = candidate
        self.bus.emit(CandidateEvaluatedEvent(candidate=candidate.id, params=job.params, metrics=candidate.metrics(),
                                              accepted=candidate.accepted, duration_s=candidate.duration_s,
                                              node=result.node or None))
        return candidate

    def objective(self, candidate: Candidate) -> list[float]:
        from modelmill.evaluate import objective

        return objective(candidate.evaluation) if candidate.evaluation is not None else [0.0]

    # --- strategies -------------------------------------------------------------------------

    def run(self, space: SearchSpace) -> Candidate:
        strategy = self.plan.search or {}
        try:
            if self.plan.cluster is not None:
                # Hash the input once here (memoized in the shared cache's fingerprint index): otherwise every
                # worker's first candidate reads the whole checkpoint again, all at the same moment.
                input_key(self.plan, self.cache)
            if self.plan.metrics and self.plan.evaluate_input_model:
                self.baseline = self.evaluate(self.plan.input_model, input_key(self.plan, self.cache), "input")
                self.bus.emit(CandidateEvaluatedEvent(candidate="input", params={},
                                                      metrics=self.baseline.to_json()["metrics"], accepted=True,
                                                      duration_s=self.baseline.duration_s, is_input=True))
            with _driver_cancel(self.plan):
                if not strategy or not space.dimensions:
                    self._run_one(self.plan.steps, {})
                elif strategy.get("execution_order") == "pass-by-pass":
                    self._pass_by_pass(space, strategy)
                else:
                    self._optuna(self.plan.steps, space, strategy, deadline=_deadline(strategy))
            return self.best()
        finally:
            self.executor.close()

    def _run_one(self, steps: list[PlanStep], params: dict[str, Any]) -> None:
        if self.cancel.is_set():
            raise RunCancelled()
        executor = self.executor
        executor.submit(self._job(steps, params))
        while executor.running:
            if self.cancel.is_set():
                executor.cancel_all()
                raise RunCancelled()
            for job, result in executor.wait():
                if isinstance(result, CANDIDATE_FAILURES):
                    raise result
                self._finish(job, result)

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
        sampler_name = strategy.get("sampler", "tpe")
        sampler = make_sampler(sampler_name, choices, int(strategy.get("seed", 1)),
                               bool(strategy.get("multivariate", True)))
        directions = ["minimize"] * max(1, len(self._probe_objective()))
        study = optuna.create_study(sampler=sampler, directions=directions)
        budget = int(strategy.get("max_samples") or 0) or int(strategy.get("max_iter") or 0) or space.size()
        budget = min(budget, space.size()) if sampler_name == "sequential" else budget
        executor = self.executor
        # Grid and random proposals do not depend on earlier results: a free worker gets the next one at once.
        # TPE learns from results, so it proposes a round of `capacity` and waits for the whole round: the
        # candidates then depend only on the seed and the round size, not on which worker finished first.
        history_free = sampler_name in ("sequential", "random")
        local: list[Candidate] = []
        inflight: dict[str, tuple[Any, CandidateJob]] = {}
        followers: dict[str, list[Any]] = {}  # trials that proposed a candidate already in flight
        asked, stop = 0, False

        def tell(trial: Any, candidate: Candidate | None) -> None:
            if candidate is None:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                return
            values = self.objective(candidate)
            study.tell(trial, values if len(directions) > 1 else values[0])

        while True:
            fill = history_free or not executor.running  # tpe: a new round only when the last one is done
            while (fill and not stop and not self.cancel.is_set() and asked < budget
                   and len(executor.running) < executor.capacity
                   and (deadline is None or time.monotonic() < deadline)):
                trial = study.ask()
                asked += 1
                choice = {names[name]: trial.suggest_categorical(name, values) for name, values in choices.items()}
                params = {**(base_params or {}), **{name: choice[names[name]] for name in choices}}
                signature = _signature(params)
                if signature in self._seen:  # samplers may propose a point twice: free the second time
                    local.append(self._seen[signature])
                    tell(trial, self._seen[signature])
                    continue
                if signature in inflight:
                    followers.setdefault(signature, []).append(trial)
                    continue
                try:
                    job = self._job(substitute(steps, space, choice), params)
                except ValidationError as exc:
                    self._failed(params, exc)
                    tell(trial, None)
                    continue
                inflight[signature] = (trial, job)
                executor.submit(job)
            if not executor.running:
                break
            if self.cancel.is_set():
                executor.cancel_all()
                break
            for job, result in executor.wait():
                signature = _signature(job.params)
                trial, _ = inflight.pop(signature)
                waiting = [trial, *followers.pop(signature, [])]
                if isinstance(result, CANDIDATE_FAILURES):
                    # One bad combination (e.g. a quantizer with nothing left to quantize) must not end the search.
                    self._failed(job.params, result, job.id)
                    for each in waiting:
                        tell(each, None)
                    continue
                if isinstance(result, BaseException):
                    executor.cancel_all()
                    raise result
                candidate = self._finish(job, result)
                local.append(candidate)
                for each in waiting:
                    tell(each, candidate)
                if strategy.get("stop_when_goals_met") and candidate.accepted and candidate.evaluation is not None \
                        and any(v.goal for v in candidate.evaluation.values):
                    stop = True
        if self.cancel.is_set():
            raise RunCancelled()
        return self.best(local)

    def _failed(self, params: dict[str, Any], exc: Exception, candidate: str | None = None) -> None:
        self.failures.append(exc)
        self.bus.emit(CandidateFailedEvent(params=params, message=getattr(exc, "message", str(exc)),
                                           fix=getattr(exc, "fix", None), candidate=candidate or None))

    def _probe_objective(self) -> list[float]:
        """How many objectives the metrics define (priority >= 1), without measuring anything."""
        ranked = [s for m in (self.plan.metrics or []) for s in m.sub_types if s.priority >= 1]
        return [0.0] * max(1, len(ranked))

    # --- results ----------------------------------------------------------------------------

    def best(self, pool: list[Candidate] | None = None) -> Candidate:
        """Lexicographically best by metric priority among accepted candidates (all, if none is accepted)."""
        pool = sorted(pool if pool is not None else self.candidates, key=lambda c: int(c.id[1:]))
        if not pool:
            if self.failures and not self.cancel.is_set():
                raise self.failures[-1]
            raise RunCancelled()
        accepted = [c for c in pool if c.accepted] or pool
        if len(accepted) < len(pool) and not any(c.accepted for c in pool):
            self.bus.emit(WarningEvent(message="no candidate met every goal; keeping the best one anyway"))
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


def _driver_cancel(plan: Plan) -> Any:
    """With a cluster this process only drives: a cancel (SIGTERM) sets the cancel event and the loop
    cancels the Ray tasks itself, instead of the process ending with tasks still running remotely."""
    import contextlib

    if plan.cluster is None:
        return contextlib.nullcontext()
    from modelmill.engine.cancel import graceful_cancel

    return graceful_cancel()


def _signature(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _deadline(strategy: dict[str, Any]) -> float | None:
    max_time = strategy.get("max_time")
    return time.monotonic() + float(max_time) if max_time else None
