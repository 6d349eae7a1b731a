"""Reports: metrics.json, metrics.md and a self-contained report.html with plots; results and catalog basics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from modelmill.engine.model import ModelRef
from modelmill.evaluate import EvaluationResult, MetricValue, evaluate_model, write_reports
from modelmill.evaluate.runtime import EvaluationError
from modelmill.evaluate.catalog import CATALOG, METRIC_TYPES, MEASURED_SUB_TYPES, default_higher_is_better
from modelmill.evaluate.report import markdown_table


def _result(path: str, latency: float, size: int, accuracy: float | None) -> EvaluationResult:
    values = [MetricValue("latency", "avg", latency, "ms", False, 1, metric_type="latency"),
              MetricValue("size", "bytes", size, "bytes", False, -1, metric_type="size_on_disk")]
    if accuracy is not None:
        values.append(MetricValue("accuracy", "accuracy_score", accuracy, "", True, 2,
                                  {"type": "max-degradation", "value": 0.01}, "accuracy"))
    return EvaluationResult(path, values, duration_s=1.5, model_kind="onnx")


def test_write_reports(tmp_path: Path) -> None:
    results = {"input": _result("/m/in", 12.5, 4_000_000, 0.91), "int4": _result("/m/int4", 6.25, 1_000_000, 0.9),
               "int8 <b>": _result("/m/int8", 8.0, 2_000_000, None)}
    paths = write_reports(results, tmp_path / "report")
    assert set(paths) == {"json", "markdown", "html"} and all(p.exists() for p in paths.values())
    data = json.loads(paths["json"].read_text())
    assert data["candidates"]["int4"]["metrics"]["latency-avg"] == 6.25
    assert data["metrics"]["size-bytes"]["unit"] == "bytes"
    assert EvaluationResult.from_json(data["candidates"]["input"]).by_key()["accuracy-accuracy_score"].goal == \
        {"type": "max-degradation", "value": 0.01}
    markdown = paths["markdown"].read_text()
    assert "| candidate | latency-avg (ms) ↓ | size-bytes ↓ | accuracy-accuracy_score ↑ |" in markdown
    assert "| int4 | 6.25 | 977 KiB | 0.9 |" in markdown  # sizes in human units: 1,000,000 bytes
    assert "| int8 &lt;b> | 8 | 1.91 MiB | – |" in markdown
    page = paths["html"].read_text()
    assert page.count("<img") == 4  # scatter + one bar chart per key
    assert "data:image/png;base64," in page and "latency vs size" in page
    assert "int8 &lt;b&gt;" in page and "int8 <b>" not in page  # names are escaped


def test_results_json_roundtrip_and_nan() -> None:
    value = MetricValue("llm", "perplexity", math.nan, "", False, 1, metric_type="llm")
    assert value.key == "llm-perplexity" and value.to_json()["value"] is None
    result = EvaluationResult("/m", [value, MetricValue("lat", "p90", 3.0, "ms", False)])
    assert result.get("lat-p90") == 3.0 and result.get("nope") is None
    assert "| m |" in markdown_table({"m": result})


def test_catalog() -> None:
    assert set(METRIC_TYPES) == set(CATALOG) == set(MEASURED_SUB_TYPES)
    assert CATALOG["llm"]["prefill_ms"][:2] == ("ms", False)
    assert CATALOG["llm"]["decode_tokens_per_s"][:2] == ("tokens/s", True)
    assert CATALOG["memory"]["peak_mb"][:2] == ("MB", False)
    assert set(CATALOG["similarity"]) >= {"cosine_mean", "cosine_min"}
    assert CATALOG["custom"] == {} and MEASURED_SUB_TYPES["custom"] is None
    assert not default_higher_is_better("accuracy", "perplexity") and default_higher_is_better("throughput", "p50")
    # Olive's sub types as the config schema lists them
    from modelmill.config.evaluation import METRIC_SUB_TYPES

    for metric_type, names in METRIC_SUB_TYPES.items():
        assert names is None or set(names) == set(CATALOG[metric_type]), metric_type


def test_metrics_are_checked_before_measuring(tmp_path: Path) -> None:
    model = ModelRef("onnx", tmp_path)  # nothing there: errors must come from the metric specs
    cases = [({"name": "a", "type": "accuracy", "sub_types": [{"name": "auroc"}]}, "not measured by modelmill"),
             ({"name": "l", "type": "latency", "sub_types": [{"name": "p85"}]}, "not a latency sub type"),
             ({"name": "x", "type": "speed", "sub_types": [{"name": "avg"}]}, "unknown type"),
             ({"name": "l", "type": "latency", "sub_types": []}, "no sub_types")]
    for metric, message in cases:
        with pytest.raises(EvaluationError, match=message):
            evaluate_model(model, [metric])


def test_sizes_and_times_in_human_units() -> None:
    from modelmill.units import human_duration, human_size

    assert [human_size(n) for n in (512, 560_488, 1.5 * 1024 ** 3)] == ["512 bytes", "547 KiB", "1.5 GiB"]
    assert [human_duration(s) for s in (4.25, 75, 4000)] == ["4.2 s", "1 min 15 s", "1 h 7 min"]
