"""modelmill/lsp/codecache.py: attrs' generated methods come from the cache and behave the same; a bad cache file
only means compiling; nothing is written under PYTHONDONTWRITEBYTECODE."""

from __future__ import annotations

import marshal
import sys
from pathlib import Path

import attr
import pytest
from modelmill.lsp import codecache


def _define() -> type:
    @attr.define
    class Point:
        x: int
        y: str = "a"

    return Point


@pytest.fixture()
def cache_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "__pycache__" / f"{codecache.PREFIX}test.marshal"
    monkeypatch.setattr(codecache, "_cache_path", lambda: path)
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    return path


def test_methods_come_from_the_cache_and_behave_the_same(cache_file: Path) -> None:
    with codecache.attrs_code_cache():
        first = _define()
    assert cache_file.exists()
    with cache_file.open("rb") as stream:
        store = marshal.load(stream)
    assert any("def __init__(self, x, y=attr_dict['y'].default)" in source for source, _ in store)
    written = cache_file.stat().st_mtime_ns
    with codecache.attrs_code_cache():
        second = _define()
    assert "compile" not in vars(attr._make)  # the builtin is back
    assert second(1) == second(1, "a") and second(1) != second(2) and repr(second(1)) == repr(first(1))
    assert cache_file.stat().st_mtime_ns == written  # nothing new compiled: not rewritten


def test_a_broken_cache_only_means_compiling(cache_file: Path) -> None:
    cache_file.parent.mkdir()
    cache_file.write_bytes(b"not marshal")
    with codecache.attrs_code_cache():
        point = _define()
    assert point(3).x == 3
    with cache_file.open("rb") as stream:
        assert isinstance(marshal.load(stream), dict)


def test_nothing_is_written_under_dont_write_bytecode(cache_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with codecache.attrs_code_cache():
        assert _define()(1).y == "a"
    assert not cache_file.exists()
