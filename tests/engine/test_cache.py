"""The pass cache: reruns are free, damaged entries are rebuilt and never used."""

from __future__ import annotations

from pathlib import Path

from helpers import RecordingBus

from modelmill.engine.cache import ENTRY_FILE, Cache, fingerprint
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import Plan, PlanStep
from modelmill.engine.workflow import run_plan
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams


def _plan(model_dir: Path, tmp_path: Path, out: str = "out", precision: str = "int4") -> Plan:
    step = PlanStep("builder", ModelBuilder, ModelBuilderParams(precision=precision))
    return Plan(ModelRef("hf", model_dir), [step], tmp_path / out, tmp_path / "cache")


def _cached_flags(bus: RecordingBus) -> list[bool]:
    return [event["cached"] for event in bus.of_type("pass.finished")]


def test_rerun_is_served_from_the_cache(tiny_llama_dir: Path, tmp_path: Path) -> None:
    first, second = RecordingBus("a"), RecordingBus("b")
    run_plan(_plan(tiny_llama_dir, tmp_path), first)
    result = run_plan(_plan(tiny_llama_dir, tmp_path, out="out2"), second)
    assert _cached_flags(first) == [False] and _cached_flags(second) == [True]
    assert (tmp_path / "out2" / "model.onnx").read_bytes() == (tmp_path / "out" / "model.onnx").read_bytes()
    assert result.passes[0].cached
    # Different parameters are a different entry.
    third = RecordingBus("c")
    run_plan(_plan(tiny_llama_dir, tmp_path, out="out3", precision="fp32"), third)
    assert _cached_flags(third) == [False]
    assert len(Cache(tmp_path / "cache").list()) == 2


def test_corrupt_or_partial_entries_are_rebuilt(tiny_llama_dir: Path, tmp_path: Path) -> None:
    run_plan(_plan(tiny_llama_dir, tmp_path), RecordingBus("a"))
    cache = Cache(tmp_path / "cache")
    (entry,) = cache.list()
    data = Path(entry["folder"]) / "model.onnx.data"
    damaged = bytearray(data.read_bytes())
    damaged[100] ^= 0xFF  # same size, different content: only the hash notices
    data.write_bytes(bytes(damaged))
    bus = RecordingBus("b")
    run_plan(_plan(tiny_llama_dir, tmp_path, out="out2"), bus)
    assert _cached_flags(bus) == [False]

    (entry,) = cache.list()
    (Path(entry["folder"]) / "genai_config.json").unlink()
    bus = RecordingBus("c")
    run_plan(_plan(tiny_llama_dir, tmp_path, out="out3"), bus)
    assert _cached_flags(bus) == [False]

    # A leftover of a crashed writer (no entry.json) is never read as an entry.
    (entry,) = cache.list()
    (Path(entry["folder"]) / ENTRY_FILE).unlink()
    assert cache.get(entry["key"]) is None


def test_fingerprint_follows_content_not_names(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"abc")
    index = tmp_path / "index.json"
    first = fingerprint(folder, index)
    assert fingerprint(folder, index) == first
    (folder / "weights.bin").write_bytes(b"abd")
    assert fingerprint(folder, index) != first


def test_clean_removes_everything(tiny_llama_dir: Path, tmp_path: Path) -> None:
    run_plan(_plan(tiny_llama_dir, tmp_path), RecordingBus("a"))
    cache = Cache(tmp_path / "cache")
    assert cache.clean() == 1
    assert cache.list() == [] and not (tmp_path / "cache" / "fingerprints.json").exists()


def test_how_the_input_is_read_is_part_of_the_key(tiny_llama_dir: Path, tmp_path: Path) -> None:
    from dataclasses import replace

    from modelmill.engine.workflow import step_keys

    plan = _plan(tiny_llama_dir, tmp_path)
    cache = Cache(tmp_path / "cache")
    as_embeddings = replace(plan, input_model=plan.input_model.with_attributes(task="feature-extraction"))
    assert step_keys(plan, cache) != step_keys(as_embeddings, cache)
    assert step_keys(plan, cache) == step_keys(_plan(tiny_llama_dir, tmp_path, out="other"), cache)
