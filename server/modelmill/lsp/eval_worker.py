"""The evaluation worker for ``modelmill.evaluate``: a child process that measures a model and writes
run events (docs/events.md) as JSON lines on its standard output.

``python -m modelmill.lsp.eval_worker RUN_ID PATH [--metrics a,b] [--compare OTHER]``

Events: ``run.started`` (plan: the models and metrics), ``log`` lines, one ``metric.measured`` per
value (``candidate`` is ``model`` or ``compare``), ``candidate.evaluated`` per model, ``error`` on
failure, and ``run.finished`` (``results``: each model's values, as ``modelmill evaluate --json``).
Library output goes to a log file, never into the event stream.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modelmill.lsp.eval_worker")
    parser.add_argument("run_id")
    parser.add_argument("path")
    parser.add_argument("--metrics", default=None)
    parser.add_argument("--compare", default=None)
    args = parser.parse_args(argv)

    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")

    from modelmill.engine.events import EventBus
    from modelmill.engine.logbridge import route_worker_output

    def send(event: dict[str, Any]) -> None:
        events.write(json.dumps(event, default=str) + "\n")
        events.flush()

    bus = EventBus(args.run_id, [send])
    route_worker_output(bus, Path(tempfile.gettempdir()) / "modelmill-lsp" / f"{args.run_id}.log")
    started = time.perf_counter()
    try:
        results = _evaluate(bus, args)
    except BaseException as exc:  # noqa: BLE001 - reported as events
        from modelmill.errors import ModelMillError

        kind = type(exc).__name__ if isinstance(exc, ModelMillError) else "internal"
        bus.emit("error", message=getattr(exc, "message", str(exc)), fix=getattr(exc, "fix", None), where=None,
                 kind=kind)
        bus.emit("run.finished", status="failed", output_dir=None,
                 duration_s=round(time.perf_counter() - started, 3), best_candidate=None)
        events.close()
        return 1
    bus.emit("run.finished", status="succeeded", output_dir=None, duration_s=round(time.perf_counter() - started, 3),
             best_candidate=None, results=results)
    events.close()
    return 0


def _evaluate(bus: Any, args: argparse.Namespace) -> dict[str, Any]:
    from modelmill.evaluate import evaluate_model
    from modelmill.evaluate.compare import choose_metrics, source_model, model_ref

    models = {"model": model_ref(args.path)}
    if args.compare:
        models["compare"] = model_ref(args.compare)
    metrics = choose_metrics(argparse.Namespace(metrics=args.metrics), models["model"])
    bus.emit("run.started", plan={"evaluate": {label: str(m.path) for label, m in models.items()},
                                  "metrics": metrics, "passes": []},
             config={"path": args.path, "metrics": args.metrics, "compare": args.compare})
    results = {}
    for label, model in models.items():
        begun = time.perf_counter()

        def emit(type_: str, _label: str = label, **data: Any) -> None:
            bus.emit(type_, candidate=_label, **data)

        result = evaluate_model(model, metrics, emit=emit, reference=source_model(model))
        payload = result.to_json()
        results[label] = payload
        bus.emit("candidate.evaluated", candidate=label, params={},
                 metrics={value.key: value.value for value in result.values}, accepted=True,
                 duration_s=round(time.perf_counter() - begun, 3))
    return results


if __name__ == "__main__":
    sys.exit(main())
