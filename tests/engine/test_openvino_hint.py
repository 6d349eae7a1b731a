"""auto-opt's OpenVINO hint: said with the plan where OpenVINO measured faster on this kind of CPU, never a switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from modelmill.cli import main
from modelmill.engine import openvino_hint as hints
from modelmill.engine.openvino_hint import openvino_hint

CPU = "CPUExecutionProvider"


def test_hint_only_where_openvino_measured_faster() -> None:
    assert "1.47x" in (openvino_hint(True, "int8", CPU, {"avx512f", "avx512_vnni"}) or "")
    assert "OpenVINOQuantization" in (openvino_hint(True, "int8", CPU, {"amx_int8"}) or "")
    assert "1.83x" in (openvino_hint(True, "fp32", CPU, {"avx512_bf16"}) or "")
    assert openvino_hint(True, "int8", CPU, {"avx2", "fma"}) is None  # AVX2: ORT INT8 was the faster
    assert openvino_hint(True, "fp32", CPU, {"avx512_vnni"}) is None  # fp32's win came with bf16
    assert openvino_hint(False, "int8", CPU, {"avx512_vnni"}) is None  # LLMs: ORT GenAI finished first
    assert openvino_hint(True, "int4", CPU, {"avx512_vnni"}) is None
    assert openvino_hint(True, "int8", "OpenVINOExecutionProvider", {"avx512_vnni"}) is None


@pytest.mark.parametrize("flags", [{"avx512_vnni"}, {"avx2"}])
def test_auto_opt_says_it_with_the_plan_and_runs_the_same(flags: set[str], tiny_bert_dir: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hints, "cpu_flags", lambda: flags)
    code = main(["auto-opt", "-m", str(tiny_bert_dir), "-o", str(tmp_path / "out"), "--precision", "int8",
                 "--dry_run"])
    captured = capsys.readouterr()
    assert code == 0
    assert ("hint: on CPUs with avx512_vnni" in captured.err) == ("avx512_vnni" in flags)
    passes = json.loads(captured.out)["passes"]
    assert "conversion" in passes and not any("OpenVINO" in p["type"] for p in passes.values())
