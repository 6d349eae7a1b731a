"""Cache keys follow every byte of the model, the pass's code and ModelMill's version; nothing else is excluded
than the cache's own folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelmill.engine.cache import _model_files, fingerprint, pass_code_digest, step_key
from modelmill.errors import ModelMillError

# Folder names as they occur in real model locations: HF's hub cache (~/.cache/huggingface/hub/models--x/
# snapshots/<rev>/), ModelMill's own home (~/.cache/modelmill/samples/...), plain nested folders.
PARTS = st.sampled_from([".cache", "huggingface", "snapshots", "modelmill", "a", "b"])
TREES = st.dictionaries(st.lists(PARTS, min_size=0, max_size=3).map(lambda parts: "/".join([*parts, "f"])),
                        st.binary(min_size=1, max_size=16), min_size=1, max_size=5)


def _write(root: Path, tree: dict[str, bytes], link_root: bool) -> Path:
    """Write ``tree`` under root; with ``link_root`` the model folder is reached through a symlinked folder,
    the way the hub cache's snapshots point at its blobs."""
    real = root / "real"
    for name, data in tree.items():
        (real / name).parent.mkdir(parents=True, exist_ok=True)
        (real / name).write_bytes(data)
    if not link_root:
        return real
    model = root / ".cache" / "models--x" / "snapshots"
    model.mkdir(parents=True)
    os.symlink(real, model / "rev", target_is_directory=True)
    return model / "rev"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=TREES, link_root=st.booleans(), which=st.integers(min_value=0), flip=st.integers(0, 255))
def test_different_content_gives_a_different_fingerprint(tree: dict[str, bytes], link_root: bool, which: int,
                                                         flip: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = _write(root / "one", tree, link_root)
        index = root / "cache" / "fingerprints.json"
        before = fingerprint(model, index)
        name = sorted(tree)[which % len(tree)]
        changed = bytearray(tree[name])
        changed[0] ^= flip or 1
        other = _write(root / "two", {**tree, name: bytes(changed)}, link_root)
        assert fingerprint(other, index) != before
        assert fingerprint(model, index) == before  # and the index memo does not confuse the two


def test_files_under_dot_cache_count_and_only_the_cache_itself_is_left_out(tmp_path: Path) -> None:
    model = tmp_path / ".cache" / "model"
    (model / ".cache").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (model / ".cache" / "weights.bin").write_bytes(b"1")
    cache = model / "cache-inside"  # a cache_dir that happens to lie in the model folder
    cache.mkdir()
    index = cache / "fingerprints.json"
    first = fingerprint(model, index)
    assert {p.name for p in _model_files(model, [cache])} == {"config.json", "weights.bin"}
    (cache / "entry-data.bin").write_bytes(b"anything")
    assert fingerprint(model, index) == first
    (model / ".cache" / "weights.bin").write_bytes(b"2")
    assert fingerprint(model, index) != first


def test_a_symlink_loop_is_walked_once(tmp_path: Path) -> None:
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.bin").write_bytes(b"w")
    os.symlink(model, model / "sub" / "loop", target_is_directory=True)
    assert [p.name for p in _model_files(model)] == ["w.bin"]


def test_a_model_without_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    with pytest.raises(ModelMillError, match="holds no files"):
        fingerprint(tmp_path / "empty", tmp_path / "index.json")


def test_the_key_changes_with_the_pass_code_and_modelmill_version() -> None:
    from modelmill.passes.blockwise_rtn import OnnxBlockWiseRtnQuantization
    from modelmill.passes.model_builder import ModelBuilder

    args = ("input", "ModelBuilder", {"precision": "int4"}, {"device": "cpu"})
    versions = {"modelmill": "0.1.0"}
    base = step_key(*args, versions, pass_code_digest(ModelBuilder))
    assert step_key(*args, versions, pass_code_digest(OnnxBlockWiseRtnQuantization)) != base
    assert step_key(*args, {"modelmill": "0.1.1"}, pass_code_digest(ModelBuilder)) != base
    assert len(pass_code_digest(ModelBuilder)) == 64


def test_an_edited_pass_module_gets_a_new_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    source = tmp_path / "my_pass.py"
    source.write_text("class P:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = pass_code_digest(importlib.import_module("my_pass").P)
    source.write_text("class P:\n    x = 1\n")
    del sys.modules["my_pass"]
    assert pass_code_digest(importlib.import_module("my_pass").P) != first
    shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
