"""The cache shared by several processes (Ray workers on one shared folder): concurrent writers of one entry or
one evaluation leave exactly one complete copy, and clean-up only touches the cleaner's own temporary files."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

from modelmill.engine.cache import Cache
from modelmill.engine.output import owner_tag, write_atomic
from modelmill.engine.model import ModelRef

WRITERS = 6


def _commit_same_key(root: str, index: int, start: object) -> str:
    cache = Cache(Path(root))
    staging = cache.staging(f"w{index}")
    # Big enough that the writers really overlap; every writer produces the same content, as a pass would.
    (staging / "model.onnx").write_bytes(b"x" * (4 << 20))
    (staging / "note.txt").write_text("same content from every writer")
    start.wait()  # type: ignore[attr-defined]
    entry = cache.commit("samekey", staging, ModelRef("onnx", staging, onnx_file="model.onnx"), {"writer": index})
    return entry.meta["key"]


def _write_evaluation(path: str, index: int, start: object) -> None:
    start.wait()  # type: ignore[attr-defined]
    for _ in range(50):
        write_atomic(Path(path), json.dumps({"writer": index, "values": list(range(2000))}))


def test_concurrent_commits_of_one_entry_leave_one_intact_entry(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Manager().Event()
    with context.Pool(WRITERS) as pool:
        pending = [pool.apply_async(_commit_same_key, (str(tmp_path), i, start)) for i in range(WRITERS)]
        start.set()
        keys = [p.get(120) for p in pending]
    assert keys == ["samekey"] * WRITERS
    entry = Cache(tmp_path).get("samekey")  # verifies every file's size and hash
    assert entry is not None and (entry.folder / "model.onnx").stat().st_size == 4 << 20
    assert sorted(p.name for p in (tmp_path / "entries").iterdir()) == ["samekey"]  # no staging left over


def test_concurrent_evaluation_writes_never_expose_a_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "evaluations" / "key.json"
    context = multiprocessing.get_context("spawn")
    start = context.Manager().Event()
    with context.Pool(4) as pool:
        pending = [pool.apply_async(_write_evaluation, (str(target), i, start)) for i in range(4)]
        start.set()
        seen = 0
        while not all(p.ready() for p in pending):
            if target.exists():
                assert len(json.loads(target.read_text())["values"]) == 2000  # always a whole file
                seen += 1
        for p in pending:
            p.get(60)
    assert json.loads(target.read_text())["writer"] in range(4)
    assert [p.name for p in target.parent.iterdir()] == ["key.json"]


def test_staging_names_carry_host_and_pid_and_cleanup_is_per_owner(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    mine = cache.staging("a")
    assert mine.name == f".tmp-a-{owner_tag()}" and owner_tag().endswith(f"-{os.getpid()}")
    # Another machine's worker with the same pid writes into the same shared folder.
    theirs = tmp_path / "entries" / f".tmp-b-otherhost-{os.getpid()}"
    theirs.mkdir()
    cache.discard_staging()
    assert not mine.exists() and theirs.exists()
    cache.discard_staging(pid=12345)  # a dead local worker's leftovers only
    assert theirs.exists()
