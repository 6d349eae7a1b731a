"""ModelBuilder's session tuning: the chosen settings are written to genai_config.json and recorded in the run's
manifest; the tuned output is cached per machine. Timings are never asserted (except with a fake probe)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import RecordingBus, make_context

from modelmill import genai_tuning
from modelmill.engine.autoopt import AutoOptRequest, build_config
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.workflow import MANIFEST_NAME, run_plan
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams


@pytest.fixture(scope="module")
def built(tiny_llama_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untuned int4 build of the tiny Llama (copied by the tests that change it)."""
    ctx = make_context(tmp_path_factory.mktemp("tuning"), "model_builder")
    return ModelBuilder().run(ModelRef("hf", tiny_llama_dir), ModelBuilderParams(precision="int4"), ctx).path


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "model"))


def _decoder_options(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "genai_config.json").read_text())["model"]["decoder"]["session_options"]


def _fake_probe(speeds: dict[int, float]) -> Any:
    """A probe whose time depends on the model's intra_op_num_threads only (no real timing)."""
    def probe(og: Any, model: Any, prompt: Any, new_tokens: int) -> tuple[float, float]:
        seconds = speeds[model.threads]
        return seconds / 2, seconds / 2

    return probe


def _fake_load(og: Any, folder: Path, options: dict[str, Any]) -> Any:
    class Loaded:
        threads = int(options.get("intra_op_num_threads", 0))

    return Loaded()


def test_a_faster_candidate_is_written_and_recorded(built: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy(built, tmp_path)
    monkeypatch.setattr(genai_tuning, "usable_cpus", lambda: 2)
    monkeypatch.setattr(genai_tuning, "_load", _fake_load)
    monkeypatch.setattr(genai_tuning, "probe", _fake_probe({0: 1.0, 2: 0.6}))
    result = genai_tuning.tune(folder, rounds=2)
    assert result.chosen == "intra_op 2" and result.session_options == {"intra_op_num_threads": 2}
    options = _decoder_options(folder)
    assert options["intra_op_num_threads"] == 2 and options["log_id"] == "onnxruntime-genai"  # merged, not replaced
    summary = result.to_json()
    assert [t["name"] for t in summary["trials"]][:2] == ["as built", "intra_op 2"]
    assert all(t["rounds"] == 2 for t in summary["trials"])


def test_nothing_is_written_when_no_candidate_beats_the_noise(built: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _copy(built, tmp_path)
    before = (folder / "genai_config.json").read_text()
    monkeypatch.setattr(genai_tuning, "usable_cpus", lambda: 2)
    monkeypatch.setattr(genai_tuning, "_load", _fake_load)
    monkeypatch.setattr(genai_tuning, "probe", _fake_probe({0: 1.0, 2: 0.99}))
    result = genai_tuning.tune(folder, rounds=1, min_gain=0.03)
    assert result.chosen == "as built" and result.session_options == {} and "noise" in result.note
    assert (folder / "genai_config.json").read_text() == before


def test_real_probes_leave_a_loadable_config(built: Path, tmp_path: Path) -> None:
    import onnxruntime_genai as og

    folder = _copy(built, tmp_path)
    result = genai_tuning.tune(folder, budget_s=5, rounds=2)
    options = _decoder_options(folder)
    assert all(options[key] == value for key, value in result.session_options.items())
    assert len(result.trials) >= 3 and all(t.prefill_s and t.decode_s for t in result.trials)
    og.Model(str(folder))  # what was written is a valid genai config


def test_model_builder_records_tuning_in_the_manifest_and_caches_per_machine(
        tiny_llama_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def plan() -> Plan:
        step = PlanStep("builder", ModelBuilder, ModelBuilderParams(precision="int4", tune_session=True,
                                                                    tune_session_budget_s=3))
        return Plan(ModelRef("hf", tiny_llama_dir), [step], tmp_path / "out", tmp_path / "cache", overwrite=True)

    bus = RecordingBus("tune-1")
    run_plan(plan(), bus)
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_text())
    report = manifest["passes"][0]["report"]["session_tuning"]
    assert report["trials"][0]["name"] == "as built" and report["chosen"]
    options = _decoder_options(tmp_path / "out")
    assert all(options[key] == value for key, value in report["written_session_options"].items())
    finished = bus.of_type("pass.finished")[0]
    assert finished["report"]["session_tuning"] == report

    rerun = RecordingBus("tune-2")
    run_plan(plan(), rerun)
    finished = rerun.of_type("pass.finished")[0]
    assert finished["cached"] and finished["report"]["session_tuning"] == report  # the cached entry keeps it

    other = dict(genai_tuning.machine_fingerprint(), cpus=genai_tuning.usable_cpus() + 7)
    monkeypatch.setattr(genai_tuning, "machine_fingerprint", lambda: other)
    third = RecordingBus("tune-3")
    run_plan(plan(), third)
    assert not third.of_type("pass.finished")[0]["cached"]  # another machine tunes again


def test_untuned_builder_key_does_not_depend_on_the_machine() -> None:
    assert ModelBuilder.cache_context(ModelBuilderParams(precision="int4")) is None
    context = ModelBuilder.cache_context(ModelBuilderParams(precision="int4", tune_session=True))
    assert context is not None and context["machine"]["cpus"] >= 1 and context["tuner"]


def test_auto_opt_tunes_unless_told_not_to(tiny_llama_dir: Path) -> None:
    tuned = build_config(AutoOptRequest(model=str(tiny_llama_dir), output_path="out"), tiny_llama_dir)
    assert tuned["passes"]["model_builder"]["tune_session"] is True
    plain = build_config(AutoOptRequest(model=str(tiny_llama_dir), output_path="out", tune_session=False),
                         tiny_llama_dir)
    assert "tune_session" not in plain["passes"]["model_builder"]
    gpu = build_config(AutoOptRequest(model=str(tiny_llama_dir), output_path="out", device="gpu"), tiny_llama_dir)
    assert "tune_session" not in gpu["passes"]["model_builder"]


def test_other_processes_load_is_measured_and_flags_a_busy_machine(built: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Timings taken while other processes use the CPUs favour fewer threads: the result says the machine was busy."""
    import subprocess
    import sys
    import time

    folder = _copy(built, tmp_path)
    monkeypatch.setattr(genai_tuning, "usable_cpus", lambda: 2)
    monkeypatch.setattr(genai_tuning, "_load", _fake_load)

    def sleepy_probe(og: Any, model: Any, prompt: Any, new_tokens: int) -> tuple[float, float]:
        time.sleep(0.4)  # this process idles while the other one burns a CPU
        return 0.2, 0.2

    monkeypatch.setattr(genai_tuning, "probe", sleepy_probe)
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = genai_tuning.tune(folder, rounds=2)
    finally:
        burner.kill()
        burner.wait()
    assert busy.other_load is not None and busy.other_load > genai_tuning.BUSY_CPUS and busy.machine_busy
    assert busy.to_json()["machine_busy"] is True
