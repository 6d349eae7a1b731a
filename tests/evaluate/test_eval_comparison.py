"""Comparing models side by side (evaluate/comparison.py): ratios against the first model, better/worse in each
metric's direction, metrics a model lacks, report.html's units, and reading what runs and folders measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.contracts import CompareResult, CompareRow, to_json
from modelmill.errors import ModelMillError
from modelmill.evaluate.comparison import Measured, compare, folder_results, run_results
from modelmill.evaluate.job import metric_options
from modelmill.evaluate.report import write_reports
from modelmill.evaluate.results import EvaluationResult, MetricValue


def _result(path: str, **values: float) -> EvaluationResult:
    specs = {"latency-avg": ("latency", "avg", "ms", False, "latency"),
             "size-bytes": ("size", "bytes", "bytes", False, "size_on_disk"),
             "llm-decode_tokens_per_s": ("llm", "decode_tokens_per_s", "tokens/s", True, "llm")}
    found = []
    for key, value in values.items():
        metric, sub, unit, higher, kind = specs[key.replace("__", "-")]
        found.append(MetricValue(metric, sub, value, unit, higher, metric_type=kind))
    return EvaluationResult(path, found, 1.0, "onnx")


def _rows(result: CompareResult) -> dict[str, CompareRow]:
    return {row.key: row for row in result.rows}


def test_ratios_directions_and_best_against_the_first_model() -> None:
    base = _result("/m/fp32", latency__avg=10.0, size__bytes=4 * 2**20, llm__decode_tokens_per_s=50.0)
    int8 = _result("/m/int8", latency__avg=5.0, size__bytes=2**20, llm__decode_tokens_per_s=40.0)
    int4 = _result("/m/int4", latency__avg=12.0, size__bytes=2**19, llm__decode_tokens_per_s=100.0)
    result = compare([Measured("/m/fp32", "model", base), Measured("r1", "model", int8),
                      Measured("r2", "compare", int4)], plots=False)
    assert [c.label for c in result.columns] == ["fp32", "int8", "int4"]
    rows = _rows(result)
    latency = rows["latency-avg"].cells
    assert [c.ratio for c in latency] == [None, 0.5, 1.2]
    assert [c.ratio_text for c in latency] == ["", "0.5x", "1.2x"]
    assert [c.better for c in latency] == [None, True, False]  # lower is better
    assert [c.best for c in latency] == [False, True, False]
    tokens = rows["llm-decode_tokens_per_s"].cells
    assert [c.better for c in tokens] == [None, False, True]  # higher is better
    assert [c.best for c in tokens] == [False, False, True]
    size = rows["size-bytes"]
    assert [c.text for c in size.cells] == ["4 MiB", "1 MiB", "512 KiB"]  # report.html's human units
    assert size.label == "size-bytes ↓" and rows["latency-avg"].label == "latency-avg (ms) ↓"
    assert [c.ratio for c in size.cells] == [None, 0.25, 0.125]
    assert not result.warnings


def test_a_metric_one_model_lacks_is_a_gap_and_a_warning() -> None:
    base = _result("/m/a", latency__avg=10.0)
    other = _result("/m/b", latency__avg=8.0, size__bytes=1000.0)
    third = _result("/m/c", latency__avg=10.0, size__bytes=2000.0)
    result = compare([Measured("a", "model", base), Measured("b", "model", other), Measured("c", "model", third)],
                     plots=False)
    size = _rows(result)["size-bytes"].cells
    assert [c.value for c in size] == [None, 1000.0, 2000.0]
    assert [c.text for c in size] == ["–", "1000 bytes", "1.95 KiB"]
    assert [c.ratio for c in size] == [None, None, None] and [c.better for c in size] == [None, None, None]
    assert [c.best for c in size] == [False, True, False]
    latency = _rows(result)["latency-avg"].cells
    assert latency[2].ratio == 1.0 and latency[2].better is None  # equal: neither better nor worse
    assert result.warnings == ["size-bytes was not measured on a"]
    wire = to_json(result)
    assert wire["rows"][0]["cells"][1]["ratioText"] == "0.8x" and wire["columns"][0]["modelPath"] == "/m/a"


def test_same_folder_names_are_told_apart_and_plots_come_from_the_report() -> None:
    one, two = _result("/x/model", latency__avg=3.0, size__bytes=10.0), _result("/y/model", latency__avg=2.0,
                                                                                  size__bytes=20.0)
    result = compare([Measured("r1", "model", one), Measured("r2", "compare", two)])
    assert [c.label for c in result.columns] == ["model (model)", "model (compare)"]
    assert [p.caption for p in result.plots] == ["latency vs size", "latency-avg", "size-bytes"]
    assert all(p.png.startswith("iVBOR") for p in result.plots)  # base64 PNG


def test_fewer_than_two_models_is_refused() -> None:
    with pytest.raises(ModelMillError, match="two or more"):
        compare([Measured("a", "model", _result("/m/a", latency__avg=1.0))])


def test_folders_give_their_best_candidate_or_every_candidate(tmp_path: Path) -> None:
    output = tmp_path / "out-int4"
    write_reports({"input": _result("/in", latency__avg=10.0), "c1": _result("/c1", latency__avg=7.0),
                   "c2": _result("/c2", latency__avg=5.0)}, output)
    (output / "modelmill_run.json").write_text(json.dumps({"search": {"best": "c2"}}))
    assert [(m.candidate, m.name, m.source) for m in folder_results(output)] == [("c2", "out-int4", str(output))]
    report = tmp_path / "report"
    write_reports({"model": _result("/a", latency__avg=1.0), "compare": _result("/b", latency__avg=2.0)}, report)
    assert [m.candidate for m in folder_results(report)] == ["model", "compare"]
    with pytest.raises(ModelMillError, match="no metrics.json") as error:
        folder_results(tmp_path)
    assert "evaluate" in (error.value.fix or "")
    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(ModelMillError, match="cannot be read"):
        folder_results(tmp_path)


def test_runs_give_their_evaluation_results_or_their_output_folder(tmp_path: Path) -> None:
    measured = _result("/models/a", size__bytes=5.0)
    evaluated = [{"type": "run.started"}, {"type": "run.finished", "status": "succeeded", "output_dir": None,
                                           "results": {"model": measured.to_json()}}]
    [found] = run_results("r1", evaluated, None)
    assert (found.source, found.candidate, found.name, found.result.get("size-bytes")) == ("r1", "model", "a", 5.0)
    write_reports({"input": _result("/in", size__bytes=9.0)}, tmp_path / "out")
    optimized = [{"type": "run.finished", "status": "succeeded", "output_dir": str(tmp_path / "out")}]
    assert [(m.source, m.candidate, m.name) for m in run_results("r2", optimized, None)] == [("r2", "input", "out")]
    with pytest.raises(ModelMillError, match="did not finish successfully"):
        run_results("r3", [{"type": "run.finished", "status": "failed"}], None)


def test_metric_options_follow_the_model_kind(tiny_llama_dir: Path, tiny_bert_dir: Path) -> None:
    kind, options = metric_options(str(tiny_llama_dir))
    assert kind == "hf_causal"
    by_name = {name: (keys, default) for name, _, keys, default in options}
    assert by_name["llm"] == (["llm-prefill_ms", "llm-decode_tokens_per_s"], True)
    assert by_name["latency"][1] is False and "similarity" not in by_name
    kind, options = metric_options(str(tiny_bert_dir))
    assert kind == "hf" and "llm" not in [name for name, *_ in options]
    with pytest.raises(ModelMillError, match="does not exist"):
        metric_options(str(tiny_llama_dir.parent / "nothing-here"))


def test_metric_options_never_fetch_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path))  # no sample fetched here
    assert metric_options("sample:smollm2")[0] == "hf_causal" and metric_options("sample:minilm")[0] == "hf"
    assert not any((tmp_path / "samples").iterdir())
