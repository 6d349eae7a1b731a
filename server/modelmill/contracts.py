"""The typed contracts between the engine, the CLI, the language server and the VS Code extension, in one place.

- **Run events** (docs/events.md): one dataclass per event type, with its fields. The engine emits them
  (``EventBus.emit(PassStarted(...))``; the string form ``emit("pass.started", **fields)`` builds the same class, so
  an undeclared or missing field fails where it is emitted), every consumer reads the JSON they become.
- **Run state** (``RunView`` and its rows): what one run looks like once its events are reduced
  (``modelmill.run_state.RunState``). The CLI draws it, the language server sends it to the editor
  (``modelmill/runState``), the extension's runs panel renders it.
- **Command arguments** of the language server's ``workspace/executeCommand`` commands (docs/lsp.md), structured by
  pygls from the handlers' annotations.

docs/events.md's table of event types and extension/src/contracts.generated.ts are generated from this module
(``python -m modelmill.contracts_gen --write``); tests/test_contracts.py fails when either drifts.

Standard library only: the language server's start-up path and every run's worker import it. Field names are the
wire names of events (snake_case); run state and command arguments are camelCase on the wire (``run_id`` →
``runId``; ``json_name`` says where it differs).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

EVENTS_VERSION = 1

ENVELOPE: dict[str, tuple[str, str]] = {
    "v": ("int", "format version (1). A consumer ignores fields it does not know; a new major version changes `v`."),
    "type": ("str", "one of the types below"),
    "run_id": ("str", "the run's id (also the name suffix of its temporary folders)"),
    "ts": ("float", "Unix time in seconds (ms precision)"),
    "seq": ("int", "0, 1, 2, ... in emission order within a run, with no gaps (a consumer can detect loss)"),
}
"""Every event's own fields, stamped by ``EventBus``: name → (type, meaning)."""


def _field(doc: str = "", *, optional: bool = False, default: Any = dataclasses.MISSING,
           factory: Any = dataclasses.MISSING, json_name: str | None = None) -> Any:
    """A documented field. ``optional``: absent from the JSON when None (docs: ``name``?); otherwise always written,
    null included."""
    metadata = {"doc": doc, "optional": optional, "json": json_name}
    if optional and default is dataclasses.MISSING and factory is dataclasses.MISSING:
        default = None
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def opt(doc: str = "") -> Any:
    return _field(doc, optional=True)


def req(doc: str = "") -> Any:
    return _field(doc)


def null(doc: str = "") -> Any:
    """Always written, null when not known (an emitter may leave it out)."""
    return _field(doc, default=None)


# --------------------------------------------------------------------------------------------- run events


@dataclass(kw_only=True, slots=True)
class Event:
    """The base of every event type. ``node``, ``node_ip`` and ``worker`` tag what a candidate emits on a Ray worker
    (docs/scale-out.md); the driver re-stamps such events into the run's stream."""

    TYPE: ClassVar[str] = ""
    WHEN: ClassVar[str] = ""
    node: str | None = opt("the Ray node id")
    node_ip: str | None = opt("the Ray node's IP")
    worker: str | None = opt("`HOST-PID` of the worker process")

    def fields(self) -> dict[str, Any]:
        """The event's fields as JSON (without the envelope)."""
        out: dict[str, Any] = {}
        for name, optional in _ORDER[type(self)]:
            value = getattr(self, name)
            if value is None and optional:
                continue
            out[name] = value
        return out


@dataclass(kw_only=True, slots=True)
class RunStartedEvent(Event):
    TYPE = "run.started"
    WHEN = "first event of every run"
    plan: dict[str, Any] = req("(input model, passes with params, search space, metrics, device, EP, output and cache "
                               "dirs)")
    config: dict[str, Any] = req("(the flat config)")


@dataclass(kw_only=True, slots=True)
class PassStartedEvent(Event):
    TYPE = "pass.started"
    WHEN = "before a pass runs or is taken from the cache"
    pass_name: str = req()
    pass_type: str = req()
    index: int = req()
    total: int = req()
    params: dict[str, Any] = req()
    cache_key: str | None = null()
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class PassProgressEvent(Event):
    TYPE = "pass.progress"
    WHEN = "while a pass works"
    pass_name: str = req()
    fraction: float = req("(0–1, never decreasing within a pass)")
    message: str = _field(default="")
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class PassFinishedEvent(Event):
    TYPE = "pass.finished"
    WHEN = "a pass produced its output (or it came from the cache)"
    pass_name: str = req()
    pass_type: str = req()
    index: int = req()
    duration_s: float = req()
    output: str = req()
    cached: bool = req()
    cache_key: str = req()
    candidate: str | None = opt()
    report: dict[str, Any] | None = opt("(what the pass measured or decided, e.g. ModelBuilder's `session_tuning`; also "
                                        "in `modelmill_run.json` `passes[i].report`, and kept by the cache)")


@dataclass(kw_only=True, slots=True)
class TrainStepEvent(Event):
    TYPE = "train.step"
    WHEN = ("a training pass (LoRA) logged an optimizer step (every `logging_steps`); a `pass.progress` with the same "
            "figures as text follows")
    pass_name: str = req()
    step: int = req()
    max_steps: int = req()
    epoch: float | None = null()
    loss: float | None = null()
    learning_rate: float | None = null()
    grad_norm: float | None = null()
    steps_per_s: float | None = null()
    eta_s: float | None = null("(each number may be null)")
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class TrainEvalEvent(Event):
    TYPE = "train.eval"
    WHEN = "a training pass evaluated its eval split (every `eval_steps`)"
    pass_name: str = req()
    step: int = req()
    eval_loss: float | None = null()
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class LogEvent(Event):
    TYPE = "log"
    WHEN = "library and pass log lines"
    pass_name: str | None = opt("(a pass's own lines)")
    logger: str | None = opt("(a library's lines: its logger's name)")
    level: Literal["debug", "info", "warning", "error", "critical"] = req(
        "(`debug`/`info`/`warning`/`error`/`critical`)")
    message: str = req()
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class WarningEvent(Event):
    TYPE = "warning"
    WHEN = ("something the user should know; the run goes on (a cache entry whose bytes no longer match their recorded "
            "sha256 is dropped and rebuilt)")
    message: str = req()
    pass_name: str | None = opt()
    cache_key: str | None = opt()
    reason: str | None = opt("(a damaged cache entry)")
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class ClusterConnectedEvent(Event):
    TYPE = "cluster.connected"
    WHEN = "the run's host is a Ray cluster and the driver connected to it ([scale-out.md](scale-out.md))"
    system: str = req()
    address: str = req()
    nodes: list[dict[str, Any]] = req("(`[{node, ip, cpus, gpus, memory}]`)")
    max_concurrent: int = req()
    per_candidate: dict[str, Any] = req("(`num_cpus`, `num_gpus`, `memory`)")


@dataclass(kw_only=True, slots=True)
class CandidateStartedEvent(Event):
    TYPE = "candidate.started"
    WHEN = "a search candidate starts"
    candidate: str = req("(`c1`, `c2`, ... in proposal order)")
    params: dict[str, Any] = req('(`"pass.param": value`)')
    attempt: int | None = opt("(2, 3, ... when retried)")


@dataclass(kw_only=True, slots=True)
class EvaluationStartedEvent(Event):
    TYPE = "evaluation.started"
    WHEN = "an evaluation starts (not sent when its result is cached)"
    candidate: str = req()
    metrics: list[str] = req("(the keys it will measure)")


@dataclass(kw_only=True, slots=True)
class MetricMeasuredEvent(Event):
    TYPE = "metric.measured"
    WHEN = "one metric value measured (or read from the evaluation cache)"
    candidate: str | None = opt("(`input`, `c1`, ...)")
    metric: str = req()
    sub_type: str = req()
    key: str = req("(`latency-avg`)")
    value: float | None = req()
    unit: str = _field(default="")
    model: str | None = opt()
    cached: bool | None = opt()


@dataclass(kw_only=True, slots=True)
class CandidateEvaluatedEvent(Event):
    TYPE = "candidate.evaluated"
    WHEN = 'a candidate (or the input model, `candidate: "input"`) was evaluated'
    candidate: str = req()
    params: dict[str, Any] = req()
    metrics: dict[str, float | None] = req("(`{key: value}`)")
    accepted: bool = req("(all goals met)")
    duration_s: float = req()
    is_input: bool | None = opt()
    node: str | None = opt("(the Ray node that ran it)")


@dataclass(kw_only=True, slots=True)
class CandidateFailedEvent(Event):
    TYPE = "candidate.failed"
    WHEN = ("a candidate's pass rejected its parameters (or a Ray candidate was lost more than `max_retries` times); "
            "the search goes on")
    params: dict[str, Any] = req()
    message: str = req()
    fix: str | None = null()
    candidate: str | None = opt()


@dataclass(kw_only=True, slots=True)
class CandidateRetriedEvent(Event):
    TYPE = "candidate.retried"
    WHEN = "a Ray candidate's worker or node died, or it timed out; it runs again"
    candidate: str = req()
    attempt: int = req("(the next one)")
    max_attempts: int = req()
    reason: str = req()
    node: str | None = opt()
    worker: str | None = opt("(the lost one)")


@dataclass(kw_only=True, slots=True)
class CandidateCancelledEvent(Event):
    TYPE = "candidate.cancelled"
    WHEN = "the run was cancelled and this candidate's Ray task with it (`ray.cancel`)"
    candidate: str = req()
    node: str | None = opt()
    worker: str | None = opt()


@dataclass(kw_only=True, slots=True)
class ErrorEvent(Event):
    TYPE = "error"
    WHEN = "the run failed; always followed by `run.finished`"
    message: str = req()
    fix: str | None = null("(what to do; may be null)")
    where: str | None = null("(config key or file; may be null)")
    kind: str = req("(`ConfigError`, `PassError`, `worker-lost`, `internal`, ...)")
    traceback: str | None = opt("(internal errors)")


@dataclass(kw_only=True, slots=True)
class RunFinishedEvent(Event):
    TYPE = "run.finished"
    WHEN = "last event of every run"
    status: Literal["succeeded", "failed", "cancelled"] = req("(`succeeded` / `failed` / `cancelled`)")
    output_dir: str | None = null("(null unless it succeeded)")
    duration_s: float | None = null("(may be null)")
    best_candidate: str | None = null("(search runs; else null)")
    results: dict[str, Any] | None = opt("(`modelmill.evaluate` runs: each model's values)")


EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in (
    RunStartedEvent, PassStartedEvent, PassProgressEvent, PassFinishedEvent, TrainStepEvent, TrainEvalEvent, LogEvent,
    WarningEvent, ClusterConnectedEvent, CandidateStartedEvent, EvaluationStartedEvent, MetricMeasuredEvent,
    CandidateEvaluatedEvent, CandidateFailedEvent, CandidateRetriedEvent, CandidateCancelledEvent, ErrorEvent,
    RunFinishedEvent)}
"""Every event type, in the order of docs/events.md."""


def own_fields(cls: type) -> list[dataclasses.Field[Any]]:
    """The fields a class declares itself (redeclared base fields included), in declaration order."""
    names = list(cls.__dict__.get("__annotations__", {}))
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    return [by_name[name] for name in names if name in by_name]


def _order(cls: type) -> list[tuple[str, bool]]:
    own = own_fields(cls)
    rest = [f for f in dataclasses.fields(cls) if f not in own]
    return [(f.name, bool(f.metadata.get("optional"))) for f in [*own, *rest]]


_ORDER: dict[type, list[tuple[str, bool]]] = {cls: _order(cls) for cls in EVENT_TYPES.values()}


def make_event(type_: str, **data: Any) -> Event:
    """The typed event ``type_`` with these fields: a TypeError names a field the type does not declare or lacks."""
    cls = EVENT_TYPES.get(type_)
    if cls is None:
        raise ValueError(f"unknown event type {type_!r}: declare it in modelmill/contracts.py")
    try:
        return cls(**data)
    except TypeError as exc:
        raise TypeError(f"{type_}: {exc}") from None


def parse_event(data: Any) -> Event:
    """An event as JSON checked strictly against its type (the recorded fixtures, a stream a test reads): its
    envelope, every field declared and of the declared type, none missing. A ValueError says what is wrong where.
    Consumers need not do this; they ignore what they do not know."""
    if not isinstance(data, dict):
        raise ValueError(f"an event is a JSON object, not {type(data).__name__}")
    cls = EVENT_TYPES.get(data.get("type"))  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    for name, (kind, _) in ENVELOPE.items():
        _check(data.get(name, _ABSENT), {"int": int, "float": float, "str": str}[kind], f"{cls.TYPE}.{name}")
    if data["v"] != EVENTS_VERSION:
        raise ValueError(f"{cls.TYPE}: version {data['v']}, not {EVENTS_VERSION}")
    hints = _hints(cls)
    fields = {key: value for key, value in data.items() if key not in ENVELOPE}
    for name, value in fields.items():
        if name not in hints:
            raise ValueError(f"{cls.TYPE}: field {name!r} is not declared")
        _check(value, hints[name], f"{cls.TYPE}.{name}")
    try:
        return cls(**fields)
    except TypeError as exc:
        raise ValueError(f"{cls.TYPE}: {exc}") from None


_ABSENT = object()
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        import typing

        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _check(value: Any, hint: Any, where: str) -> None:
    """``value`` (decoded JSON) is of type ``hint`` (the annotations used in this module), or a ValueError."""
    import types
    import typing

    if value is _ABSENT:
        raise ValueError(f"{where} is missing")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for arg in args:
            try:
                return _check(value, arg, where)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[-1])
    if hint is type(None):
        ok = value is None
    elif origin is Literal:
        ok = value in args
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint in (int, str, bool):
        ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    elif origin is list:
        ok = isinstance(value, list)
        if ok:
            for index, item in enumerate(value):
                _check(item, args[0], f"{where}[{index}]")
    elif origin is dict:
        ok = isinstance(value, dict)
        if ok:
            for key, item in value.items():
                _check(item, args[1], f"{where}[{key!r}]")
    else:
        raise TypeError(f"{where}: no check for {hint!r}")
    if not ok:
        raise ValueError(f"{where} is {json.dumps(value)[:60]}, not {getattr(hint, '__name__', hint)}")


# --------------------------------------------------------------------------------------------- run state

RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
PassState = Literal["running", "done", "cached", "stopped"]
CandidateState = Literal["running", "evaluating", "evaluated", "failed"]


@dataclass(slots=True)
class PassRow:
    """One pass of the run (of one candidate in a search)."""

    name: str
    type: str
    candidate: str | None
    index: int
    total: int
    state: PassState = "running"
    fraction: float = 0.0
    message: str = ""
    duration_s: float | None = None
    node: str | None = _field("The Ray node that ran it (its IP where known), on a cluster run.", default=None)


@dataclass(slots=True)
class CandidateRow:
    """A search candidate, or the input model (`input`) measured for comparison."""

    id: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    state: CandidateState = "running"
    accepted: bool | None = None
    is_input: bool = False
    duration_s: float | None = None
    message: str | None = None
    node: str | None = None
    attempt: int = 1


@dataclass(slots=True)
class LogLine:
    ts: float
    level: str
    source: str
    message: str


@dataclass(slots=True)
class RunError:
    message: str
    fix: str | None
    where: str | None
    kind: str


@dataclass(slots=True)
class TrainingView:
    """Where a training pass (LoRA) stands: from train.step / train.eval events."""

    pass_name: str = _field(json_name="pass")
    step: int = 0
    max_steps: int = 0
    loss: float | None = None
    learning_rate: float | None = None
    eta_s: float | None = None
    eval_loss: float | None = None
    eval_step: int | None = None
    first_eval_loss: float | None = _field(
        "The first eval loss (step 0 = the base model's), to show how far training has moved it.", default=None)
    first_eval_step: int | None = None
    evals: int = _field("How many evaluations there were.", default=0)
    first_loss: float | None = _field("The first training loss.", default=None)


@dataclass(slots=True)
class RunView:
    """One run as its events left it: what the CLI, the editor's runs panel and status item show."""

    run_id: str
    label: str
    status: RunStatus = "running"
    started_ts: float | None = None
    finished_ts: float | None = None
    duration_s: float | None = None
    output_dir: str | None = None
    input_model: str | None = None
    device: str | None = None
    execution_provider: str | None = None
    passes: list[PassRow] = field(default_factory=list)
    candidates: list[CandidateRow] = field(default_factory=list)
    metric_keys: list[str] = field(default_factory=list)
    metric_units: dict[str, str] = field(default_factory=dict)
    best_candidate: str | None = None
    training: TrainingView | None = None
    evaluated: bool = _field("Evaluated runs write report.html and modelmill_run.json into their output folder.",
                             default=False)
    step: str = _field("What the run is doing now, in a line.", default="starting")
    percent: int = _field("0-100: the current pass's share of its chain (100 once succeeded).", default=0)
    logs: list[LogLine] = _field("The last log lines (up to 300; `droppedLogs` counts the older ones).", factory=list)
    dropped_logs: int = 0
    warnings: list[str] = field(default_factory=list)
    error: RunError | None = None
    events: int = 0
    missing: int = _field("Events lost in transport: gaps in `seq`.", default=0)
    version: int = _field("Bumped on every change; a view re-renders a run only when this moved.", default=0)


STATE_TYPES: tuple[type, ...] = (PassRow, CandidateRow, LogLine, RunError, TrainingView, RunView)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_name(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("json") or camel(f.name)


_JSON_FIELDS: dict[type, list[tuple[str, str]]] = {}


def to_json(value: Any) -> Any:
    """A run-state or command value as JSON (camelCase names); lists, dicts and plain values as they are."""
    cls = type(value)
    names = _JSON_FIELDS.get(cls)
    if names is None and dataclasses.is_dataclass(value):
        names = _JSON_FIELDS[cls] = [(f.name, json_name(f)) for f in dataclasses.fields(value)]
    if names is not None:
        return {wire: to_json(getattr(value, name)) for name, wire in names}
    if isinstance(value, list):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --------------------------------------------------------------------------------------------- command arguments


class ArgumentError(ValueError):
    """A command argument that is missing or of the wrong type (the server answers InvalidParams, -32602)."""


@dataclass(frozen=True, slots=True)
class CommandArgs:
    """The one argument object of a server command (docs/lsp.md)."""

    COMMAND: ClassVar[str] = ""
    """The command's key in ``modelmill.lsp.shared.SERVER_COMMANDS``."""
    TYPES: ClassVar[dict[str, tuple[type, ...]]] = {}
    """Per field, the JSON types it accepts."""
    LIST_EXAMPLE: ClassVar[str] = '["llm", "size"]'
    """A list field's example, for the message when one of its items is not a string."""

    @classmethod
    def from_json(cls, value: Any) -> Any:
        if hasattr(value, "_asdict"):  # pygls may hand a JSON object over as a named tuple
            value = value._asdict()
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ArgumentError(f"pass one argument object such as {cls.example()}")
        data: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            wire = json_name(f)
            item = value.get(wire)
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required and (item is None or item == ""):
                raise ArgumentError(f"missing argument '{wire}': pass one object such as {{\"{wire}\": ...}}")
            if item is None:
                continue
            kinds = cls.TYPES[f.name]
            if isinstance(item, bool) or not isinstance(item, kinds):
                expected = " or ".join(_JSON_TYPE_NAMES[k] for k in kinds)
                raise ArgumentError(f"argument '{wire}' must be a {expected}, not {json.dumps(item)[:60]}")
            if isinstance(item, list) and not all(isinstance(m, str) and m for m in item):
                raise ArgumentError(f"{wire} must be a list of strings such as {cls.LIST_EXAMPLE}")
            data[f.name] = str(item) if f.name == "run_id" else item
        return cls(**data)

    @classmethod
    def example(cls) -> str:
        names = [json_name(f) for f in dataclasses.fields(cls)]
        return "{" + ", ".join(f'"{n}": ...' for n in names) + "}"


_JSON_TYPE_NAMES = {str: "string", int: "number", list: "list"}


@dataclass(frozen=True, slots=True)
class UriArgs(CommandArgs):
    uri: str = _field("A file: URI (an open document's unsaved text is used) or a path.")
    TYPES = {"uri": (str,)}


@dataclass(frozen=True, slots=True)
class OptimizeArgs(UriArgs):
    COMMAND = "optimize"


@dataclass(frozen=True, slots=True)
class ValidateArgs(UriArgs):
    COMMAND = "validate"


@dataclass(frozen=True, slots=True)
class PlanArgs(UriArgs):
    COMMAND = "plan"


@dataclass(frozen=True, slots=True)
class EvaluateArgs(CommandArgs):
    COMMAND = "evaluate"
    TYPES = {"path": (str,), "metrics": (list,), "compare": (str,)}
    path: str = _field("The model folder to evaluate.")
    metrics: list[str] | None = _field("Preset names of `modelmill evaluate --metrics` (default: by model kind).",
                                       default=None)
    compare: str | None = _field("A second model folder to compare with.", default=None)


@dataclass(frozen=True, slots=True)
class EvaluateMetricsArgs(CommandArgs):
    COMMAND = "evaluateMetrics"
    TYPES = {"path": (str,)}
    path: str = _field("The model folder (or .onnx file) about to be evaluated.")


@dataclass(frozen=True, slots=True)
class CompareArgs(CommandArgs):
    COMMAND = "compare"
    TYPES = {"sources": (list,)}
    LIST_EXAMPLE = '["20261130-101500-1a2b3c", "/abs/models/other-int4"]'
    sources: list[str] = _field("Two or more finished runs (their `runId`, from `modelmill.runs`) or folders holding "
                                "a metrics.json (an output folder, a `--report` folder); the first is the baseline.")


@dataclass(frozen=True, slots=True)
class RunIdArgs(CommandArgs):
    TYPES = {"run_id": (str, int)}
    run_id: str = _field()


@dataclass(frozen=True, slots=True)
class CancelArgs(RunIdArgs):
    COMMAND = "cancel"


@dataclass(frozen=True, slots=True)
class RunStateArgs(RunIdArgs):
    COMMAND = "runState"


@dataclass(frozen=True, slots=True)
class RunEventsArgs(CommandArgs):
    COMMAND = "runEvents"
    TYPES = {"run_id": (str, int), "since": (int,)}
    run_id: str = _field()
    since: int = _field("Only events with a `seq` above this.", default=-1)


COMMAND_ARGS: tuple[type[CommandArgs], ...] = (OptimizeArgs, EvaluateArgs, CancelArgs, ValidateArgs, PlanArgs,
                                                RunEventsArgs, RunStateArgs, EvaluateMetricsArgs, CompareArgs)


@dataclass(slots=True)
class RunStartedResult:
    """What ``modelmill.optimize`` and ``modelmill.evaluate`` answer."""

    run_id: str


@dataclass(slots=True)
class CancelResult:
    cancelled: bool


@dataclass(slots=True)
class RunInfo:
    """One item of ``modelmill.runs``."""

    run_id: str
    kind: Literal["optimize", "evaluate"]
    status: Literal["starting", "running", "succeeded", "failed", "cancelled"]
    config: str
    output_dir: str | None
    started: float
    finished: float | None
    error: str | None


@dataclass(slots=True)
class MetricOption:
    """A metric preset the model can be measured with (``modelmill evaluate --metrics`` names)."""

    name: str
    description: str
    keys: list[str] = _field("The `<metric>-<sub_type>` keys it reports.")
    default: bool = _field("Measured when no metrics are chosen.")


@dataclass(slots=True)
class EvaluateMetricsResult:
    """What ``modelmill.evaluateMetrics`` answers: the presets that can measure this model."""

    path: str
    model_kind: str = _field("genai, onnx, hf_causal, hf or composite (evaluate/presets.py).")
    options: list[MetricOption]


@dataclass(slots=True)
class CompareColumn:
    """One model compared: a candidate of a run or of a folder's metrics.json."""

    label: str
    source: str = _field("The run id or folder it came from.")
    candidate: str = _field("Its name there: model, compare, input, c1, ...")
    model_path: str


@dataclass(slots=True)
class CompareCell:
    value: float | None
    text: str = _field("The value as report.html writes it (sizes in KiB/MiB/GiB); `–` when not measured.")
    ratio: float | None = _field("value / the baseline's (the first column's); null for the baseline or a gap.")
    ratio_text: str
    better: bool | None = _field("Better than the baseline in the metric's direction; null: the baseline, a gap, "
                                 "or equal.")
    best: bool = _field("The best value of the row (more than one column measured it).")


@dataclass(slots=True)
class CompareRow:
    key: str
    label: str = _field("The key with its unit and direction, as report.html's column header.")
    metric_type: str
    unit: str
    higher_is_better: bool
    cells: list[CompareCell]


@dataclass(slots=True)
class ComparePlot:
    caption: str
    png: str = _field("A base64 PNG: report.html's plot of the compared models.")


@dataclass(slots=True)
class CompareResult:
    """What ``modelmill.compare`` answers: rows = metrics, columns = models, ratios vs the first column."""

    columns: list[CompareColumn]
    rows: list[CompareRow]
    plots: list[ComparePlot]
    warnings: list[str] = _field("What was left out (a source with no metrics, a metric one model lacks).")


RESULT_TYPES: tuple[type, ...] = (RunStartedResult, CancelResult, RunInfo, MetricOption, EvaluateMetricsResult,
                                  CompareColumn, CompareCell, CompareRow, ComparePlot, CompareResult)
