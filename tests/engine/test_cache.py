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

    from modelmill.engine.chain import step_keys

    plan = _plan(tiny_llama_dir, tmp_path)
    cache = Cache(tmp_path / "cache")
    as_embeddings = replace(plan, input_model=plan.input_model.with_attributes(task="feature-extraction"))
    assert step_keys(plan, cache) != step_keys(as_embeddings, cache)
    assert step_keys(plan, cache) == step_keys(_plan(tiny_llama_dir, tmp_path, out="other"), cache)


def test_a_corrupt_entry_with_its_old_timestamp_is_never_served(tiny_llama_dir: Path, tmp_path: Path) -> None:
    """Bytes flipped and the mtime put back: the size/mtime check cannot see it, the copy's hash does."""
    import json
    import os

    from modelmill.engine.output import file_digest
    from modelmill.engine.workflow import MANIFEST_NAME

    run_plan(_plan(tiny_llama_dir, tmp_path), RecordingBus("a"))
    (entry,) = Cache(tmp_path / "cache").list()
    data = Path(entry["folder"]) / "model.onnx.data"
    stat = data.stat()
    damaged = bytearray(data.read_bytes())
    damaged[100] ^= 0xFF
    data.write_bytes(bytes(damaged))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    bus = RecordingBus("b")
    run_plan(_plan(tiny_llama_dir, tmp_path, out="out2"), bus)
    (reported,) = [e for e in bus.of_type("warning") if e.get("cache_key")]
    assert reported["cache_key"] == entry["key"] and "model.onnx.data" in reported["reason"]
    manifest = json.loads((tmp_path / "out2" / MANIFEST_NAME).read_text())
    for name, info in manifest["files"].items():
        assert file_digest(tmp_path / "out2" / name) == info["sha256"], name
    assert (tmp_path / "out2" / "model.onnx.data").read_bytes() == (tmp_path / "out" / "model.onnx.data").read_bytes()


def test_an_entry_read_by_the_next_pass_is_rehashed(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import os

    from modelmill.passes.blockwise_rtn import OnnxBlockWiseRtnQuantization, OnnxBlockWiseRtnQuantizationParams

    first = PlanStep("builder", ModelBuilder, ModelBuilderParams(precision="fp32"))
    run_plan(Plan(ModelRef("hf", tiny_llama_dir), [first], tmp_path / "out", tmp_path / "cache"), RecordingBus("a"))
    (entry,) = Cache(tmp_path / "cache").list()
    data = Path(entry["folder"]) / "model.onnx.data"
    stat = data.stat()
    damaged = bytearray(data.read_bytes())
    damaged[64] ^= 0x55
    data.write_bytes(bytes(damaged))
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = PlanStep("rtn", OnnxBlockWiseRtnQuantization, OnnxBlockWiseRtnQuantizationParams())
    bus = RecordingBus("b")
    run_plan(Plan(ModelRef("hf", tiny_llama_dir), [first, second], tmp_path / "out2", tmp_path / "cache"), bus)
    assert [e["cache_key"] for e in bus.of_type("warning") if e.get("cache_key")] == [entry["key"]]
    assert _cached_flags(bus) == [False, False]


def test_clean_works_only_on_a_marked_cache_and_only_on_its_own_items(tiny_llama_dir: Path, tmp_path: Path) -> None:
    import pytest

    from modelmill.engine.cache import MARKER
    from modelmill.errors import ModelMillError

    user = tmp_path / "experiments"
    (user / "runs" / "exp1").mkdir(parents=True)
    (user / "runs" / "exp1" / "notes.txt").write_text("mine")
    (user / "fingerprints.json").write_text("{}")
    with pytest.raises(ModelMillError, match="not a ModelMill cache"):
        Cache(user, create=False).clean()
    assert (user / "runs" / "exp1" / "notes.txt").exists() and (user / "fingerprints.json").exists()
    # A run may use such a folder as its cache, but does not mark it: clean still refuses.
    Cache(user)
    assert not (user / MARKER).exists()

    run_plan(_plan(tiny_llama_dir, tmp_path), RecordingBus("a"))
    cache_dir = tmp_path / "cache"
    assert (cache_dir / MARKER).is_file()
    (cache_dir / "runs" / "exp1").mkdir(parents=True)
    (cache_dir / "runs" / "exp1" / "notes.txt").write_text("mine too")
    (cache_dir / "entries" / "README").write_text("keep")
    assert Cache(cache_dir, create=False).clean() == 1
    assert (cache_dir / "runs" / "exp1" / "notes.txt").exists() and (cache_dir / "entries" / "README").exists()
    assert Cache(cache_dir, create=False).list() == []


def test_listing_never_writes(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    assert Cache(missing, create=False).list() == [] and not missing.exists()
    (tmp_path / "plain").mkdir()
    assert Cache(tmp_path / "plain", create=False).list() == [] and not any((tmp_path / "plain").iterdir())
