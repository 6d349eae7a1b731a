"""The one reducer of run events (modelmill/run_state.py): what the CLI draws, the language server reports and sends
to the editor, and the runs panel renders. On the recorded real runs (extension/test/fixtures/*.events.jsonl) and on
synthetic streams for each event type, out-of-order and unknown events included."""

from __future__ import annotations

import io
import itertools
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from modelmill.contracts import EVENT_TYPES, to_json
from modelmill.render import ProgressRenderer
from modelmill.run_state import _HANDLERS, MAX_LOG_LINES, RunState, panel_value

FIXTURES = Path(__file__).resolve().parents[1] / "extension" / "test" / "fixtures"


def _read(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def _stream(run_id: str):
    seq, ts = itertools.count(), itertools.count(1000)

    def event(type_: str, **fields: Any) -> dict[str, Any]:
        return {"v": 1, "type": type_, "run_id": run_id, "ts": float(next(ts)), "seq": next(seq), **fields}

    return event


def test_every_event_type_has_a_reducer() -> None:
    assert set(_HANDLERS) == set(EVENT_TYPES)


def test_a_real_run_reaches_done_with_its_pass_metrics_and_best_candidate() -> None:
    events = _read("tiny-run.events.jsonl")
    view = RunState.replay(events[0]["run_id"], events, "tiny_optimize.json").view
    started = events[0]
    finished = events[-1]
    passes = [e for e in events if e["type"] == "pass.finished"]
    assert (view.status, view.label, view.percent) == ("succeeded", "tiny_optimize.json", 100)
    assert [(p.name, p.type, p.candidate, p.state, p.duration_s) for p in view.passes] == \
        [(e["pass_name"], e["pass_type"], e.get("candidate"), "done", e["duration_s"]) for e in passes]
    assert view.duration_s == finished["duration_s"]
    assert view.step == f"done in {finished['duration_s']:.1f} s"
    assert view.output_dir == started["plan"]["output_dir"] == finished["output_dir"]
    assert (view.device, view.execution_provider) == ("cpu", "CPUExecutionProvider")
    assert view.metric_keys == ["size-bytes"] and view.metric_units == {"size-bytes": "bytes"}
    evaluated = [e for e in events if e["type"] == "candidate.evaluated"]
    assert [(c.id, c.metrics, c.state, c.accepted, c.is_input) for c in view.candidates] == \
        [(e["candidate"], e["metrics"], "evaluated", True, e["candidate"] == "input") for e in evaluated]
    assert view.best_candidate == finished["best_candidate"] == "c1"
    assert view.evaluated and view.missing == 0 and view.events == len(events)
    logs = [e for e in events if e["type"] == "log"]
    assert [(line.source, line.message) for line in view.logs] == [(e["pass_name"], e["message"]) for e in logs]


def test_a_real_run_mid_pass_follows_the_pass() -> None:
    events = _read("tiny-run.events.jsonl")
    upto = next(i for i, e in enumerate(events) if e["type"] == "pass.progress" and 0 < e["fraction"] < 1)
    progress = events[upto]
    view = RunState.replay("r", events[:upto + 1]).view
    assert view.status == "running" and view.passes[0].state == "running"
    assert view.percent == int(100 * progress["fraction"])
    assert view.step == f"c1 · {progress['pass_name']}: {progress['message']}"


def test_a_real_finetune_keeps_its_losses() -> None:
    events = _read("tiny-finetune.events.jsonl")
    steps = [e for e in events if e["type"] == "train.step"]
    evals = [e for e in events if e["type"] == "train.eval"]
    view = RunState.replay(events[0]["run_id"], events).view
    training = view.training
    assert view.status == "succeeded" and training is not None
    assert (training.pass_name, training.step, training.max_steps) == ("lora", steps[-1]["step"], steps[-1]["max_steps"])
    assert (training.loss, training.learning_rate, training.first_loss) == \
        (steps[-1]["loss"], steps[-1]["learning_rate"], steps[0]["loss"])
    assert (training.first_eval_loss, training.first_eval_step) == (evals[0]["eval_loss"], 0)
    assert (training.eval_loss, training.eval_step, training.evals) == (evals[-1]["eval_loss"], evals[-1]["step"],
                                                                         len(evals))
    assert sum(line.message.startswith("eval loss") for line in view.logs) == len(evals)
    assert to_json(training)["pass"] == "lora"


def test_a_ray_run_shows_nodes_retries_and_a_lost_candidate() -> None:
    state, e = RunState("ray"), _stream("ray")

    def at(ip: str) -> dict[str, str]:
        return {"node": f"{ip.replace('.', '')}abcdef0123", "node_ip": ip, "worker": f"h-{ip}"}

    for event in [
        e("run.started", plan={"output_dir": "/out/s"}, config={}),
        e("cluster.connected", system="cluster", address="127.0.0.1:6379", max_concurrent=2,
          nodes=[{"node": "a"}, {"node": "b"}], per_candidate={}),
        e("candidate.started", candidate="c1", params={"q.block_size": 32}, **at("10.0.0.1")),
        e("pass.started", candidate="c1", pass_name="q", pass_type="ModelBuilder", index=0, total=1, params={},
          cache_key=None, **at("10.0.0.1")),
        e("candidate.retried", candidate="c1", attempt=2, max_attempts=3, reason="worker died", **at("10.0.0.1")),
        e("candidate.started", candidate="c1", params={"q.block_size": 32}, attempt=2, **at("10.0.0.2")),
        e("pass.started", candidate="c1", pass_name="q", pass_type="ModelBuilder", index=0, total=1, params={},
          cache_key=None, **at("10.0.0.2")),
        e("candidate.evaluated", candidate="c1", params={"q.block_size": 32}, metrics={"size-bytes": 5},
          accepted=True, duration_s=1.0, node="100020abcdef0123", node_ip="10.0.0.2"),
        e("candidate.started", candidate="c2", params={"q.block_size": 64}, **at("10.0.0.1")),
        e("candidate.failed", candidate="c2", params={}, message="lost 3 times", fix=None),
    ]:
        state.apply(event)
    view = state.view
    c1, c2 = view.candidates
    assert (c1.node, c1.attempt, c1.state) == ("10.0.0.2", 2, "evaluated")
    assert (c2.state, c2.message) == ("failed", "lost 3 times")
    assert len(view.passes) == 1 and view.passes[0].node == "10.0.0.2"  # the retried pass's row starts over
    assert any(line.level == "warning" and "retrying (attempt 2 of 3): worker died (was on 10.0.0.1)" in line.message
               for line in view.logs)
    assert any("connected to Ray cluster cluster (2 nodes)" in line.message for line in view.logs)
    assert view.label == "s"  # no label given: the output folder's name


def test_duplicates_are_dropped_and_gaps_counted() -> None:
    state, e = RunState("r1"), _stream("r1")
    first = e("run.started", plan={"output_dir": "/out/x"}, config={})
    assert state.apply(first)
    assert not state.apply(first)
    e("log", level="info", message="lost")
    assert state.apply(e("log", level="info", message="kept"))
    late = {**first, "seq": 1, "type": "log", "message": "out of order"}
    assert not state.apply(late)  # an event older than one already seen: dropped, as a duplicate
    assert (state.view.missing, state.view.events, state.view.label) == (1, 2, "x")


def test_unknown_events_and_non_events_are_ignored() -> None:
    state, e = RunState("r4"), _stream("r4")
    assert state.apply(e("something.new", x=1))
    assert not state.apply({}) and not state.apply("run.started") and not state.apply({"type": 5})
    assert state.apply({"type": "pass.progress"})  # no seq, no fields: counted, nothing to update
    view = state.view
    assert (view.status, view.events, view.passes, view.step) == ("running", 2, [], ": ")


def test_a_failed_run_keeps_its_error_and_stops_running_passes() -> None:
    state, e = RunState("r2"), _stream("r2")
    state.apply(e("run.started", plan={}, config={}))
    state.apply(e("pass.started", pass_name="conv", pass_type="OnnxConversion", index=0, total=2, params={},
                  cache_key=None))
    assert (state.view.percent, state.view.step) == (0, "pass 1/2 conv (OnnxConversion)")
    state.apply(e("pass.progress", pass_name="conv", fraction=0.5, message="exporting"))
    assert (state.view.percent, state.view.step) == (25, "conv: exporting")
    state.apply(e("error", message="out of memory", fix="use a smaller batch", where="passes.conv", kind="PassError"))
    state.apply(e("run.finished", status="failed", output_dir=None, duration_s=None, best_candidate=None))
    view = state.view
    assert view.status == "failed" and view.passes[0].state == "stopped"
    assert to_json(view.error) == {"message": "out of memory", "fix": "use a smaller batch", "where": "passes.conv",
                                   "kind": "PassError"}
    assert view.step == "failed: out of memory"
    assert view.duration_s == 4.0  # none given: from the first and last event's times


def test_a_search_with_a_failed_candidate_a_cached_pass_and_a_warning() -> None:
    state, e = RunState("r3"), _stream("r3")
    for event in [
        e("run.started", plan={}, config={}),
        e("candidate.started", candidate="c1", params={"q.block_size": 32}),
        e("pass.started", candidate="c1", pass_name="q", pass_type="T", index=0, total=1, params={}, cache_key="k"),
        e("pass.finished", candidate="c1", pass_name="q", pass_type="T", index=0, duration_s=0.01, output="/o",
          cached=True, cache_key="k"),
        e("evaluation.started", candidate="c1", metrics=["latency-avg"]),
        e("metric.measured", candidate="c1", metric="latency", sub_type="avg", key="latency-avg", value=1500.0,
          unit="ms"),
    ]:
        state.apply(event)
    assert state.view.step == "c1 · latency-avg = 1.5 s"  # the editor's units (format_value.json's "ts")
    assert state.view.passes[0].state == "cached" and state.view.percent == 100
    for event in [
        e("candidate.failed", params={"q.block_size": 32}, message="boom", fix=None),  # names no candidate
        e("warning", message="no candidate met every goal; keeping the best one anyway"),
        e("run.finished", status="cancelled", output_dir=None, duration_s=None, best_candidate=None),
    ]:
        state.apply(event)
    view = state.view
    assert [(c.id, c.state, c.message) for c in view.candidates] == [("c1", "failed", "boom")]
    assert view.candidates[0].metrics == {"latency-avg": 1500.0}
    assert len(view.warnings) == 1 and (view.status, view.step) == ("cancelled", "cancelled")


def test_a_training_pass_that_runs_again_trains_anew() -> None:
    state, e = RunState("t"), _stream("t")
    for candidate in ("c1", "c2"):
        state.apply(e("pass.started", candidate=candidate, pass_name="lora", pass_type="LoRA", index=0, total=1,
                      params={}, cache_key=None))
        state.apply(e("train.eval", pass_name="lora", step=0, eval_loss=2.0 if candidate == "c1" else 3.0))
        state.apply(e("train.step", pass_name="lora", step=1, max_steps=2, loss=1.0, learning_rate=1e-4,
                      epoch=None, grad_norm=None, steps_per_s=None, eta_s=None))
    assert state.view.training is not None and state.view.training.first_eval_loss == 3.0


def test_the_log_stays_bounded() -> None:
    state, e = RunState("r5"), _stream("r5")
    for i in range(5000):
        state.apply(e("log", level="debug", message=f"line {i}"))
    view = state.view
    assert len(view.logs) <= MAX_LOG_LINES * 1.5
    assert len(view.logs) + view.dropped_logs == 5000
    assert view.logs[-1].message == "line 4999"


def test_an_hour_of_a_busy_search_reduces_in_well_under_a_second_per_minute() -> None:
    """60,000 events (progress, logs, metrics over 200 candidates): the editor's 1,000 events a minute for an hour."""
    e = _stream("busy")
    events = [e("run.started", plan={"output_dir": "/o"}, config={})]
    for c in itertools.count(1):
        if len(events) >= 60000:
            break
        cand = f"c{c}"
        events.append(e("candidate.started", candidate=cand, params={"q.block_size": 32}))
        for p in range(3):
            events.append(e("pass.started", candidate=cand, pass_name=f"p{p}", pass_type="T", index=p, total=3,
                            params={}, cache_key=None))
            for i in range(1, 91):
                events.append(e("pass.progress", candidate=cand, pass_name=f"p{p}", fraction=i / 100,
                                message=f"step {i}"))
                events.append(e("log", pass_name=f"p{p}", level="debug", message=f"detail {i}"))
            events.append(e("pass.finished", candidate=cand, pass_name=f"p{p}", pass_type="T", index=p,
                            duration_s=1.0, output="/o", cached=False, cache_key="k"))
        events.append(e("evaluation.started", candidate=cand, metrics=["latency-avg", "size-bytes"]))
        events.append(e("metric.measured", candidate=cand, metric="latency", sub_type="avg", key="latency-avg",
                        value=10.0 + c, unit="ms"))
        events.append(e("candidate.evaluated", candidate=cand, params={}, metrics={"latency-avg": 10.0 + c},
                        accepted=True, duration_s=1.0))
    state = RunState("busy")
    began = time.process_time()  # this process's CPU time: other processes' load does not inflate it
    for event in events:
        state.apply(event)
    elapsed = time.process_time() - began
    assert state.view.events == len(events) and len(state.view.candidates) > 50
    assert elapsed < 6.0, f"reducing 60,000 events took {elapsed:.1f} s of CPU (quadratic work?)"
    began = time.process_time()
    json.dumps(state.to_json())
    assert time.process_time() - began < 0.5  # one modelmill/runState of a long run: CPU time, not wall


def test_panel_values_are_written_as_the_editor_writes_them() -> None:
    cases = json.loads((FIXTURES / "format_value.json").read_text())
    for case in cases["same"]:
        assert panel_value(case["value"], case["unit"]) == case["expected"], case
    for case in cases["differ"]:
        assert panel_value(case["value"], case["unit"]) == case["ts"], case
    assert panel_value(1.2345e-7) == "1.235e-7" and panel_value(-2.5) == "-2.5"


def test_the_cli_draws_the_reducers_state() -> None:
    """The terminal's bars follow the pass rows: a pass.progress that names no candidate moves its candidate's bar."""
    out = io.StringIO()
    e = _stream("cli")
    with ProgressRenderer(Console(file=out, force_terminal=False, width=200)) as renderer:
        renderer(e("run.started", plan={}, config={}))
        renderer(e("pass.started", candidate="c1", pass_name="q", pass_type="T", index=0, total=1, params={},
                   cache_key=None))
        renderer(e("pass.progress", pass_name="q", fraction=0.5, message="halfway"))
        bar = renderer.progress.tasks[0]
        assert (bar.completed, bar.fields["message"]) == (0.5, "halfway")
        renderer(e("pass.finished", candidate="c1", pass_name="q", pass_type="T", index=0, duration_s=2.0,
                   output="/o", cached=False, cache_key="k"))
        renderer(e("run.finished", status="succeeded", output_dir="/o", duration_s=3.0, best_candidate="c1"))
        assert renderer.state is not None and renderer.state.view.status == "succeeded"
    assert "best candidate: c1" in out.getvalue()
