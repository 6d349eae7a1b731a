"""Model paths: samples, local folders, and hub ids that are refused with a clear fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill import samples
from modelmill.errors import ModelMillError


def test_hub_id_is_not_downloaded() -> None:
    with pytest.raises(ModelMillError) as info:
        samples.resolve_model_path("Qwen/Qwen2.5-0.5B-Instruct")
    assert "not found locally" in info.value.message
    assert "local folder" in (info.value.fix or "") and "sample:smollm2" in (info.value.fix or "")


def test_local_paths_resolve_and_missing_ones_fail(tmp_path: Path) -> None:
    assert samples.resolve_model_path(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(ModelMillError, match="does not exist"):
        samples.resolve_model_path(str(tmp_path / "nope"))


def test_unknown_sample_lists_the_known_ones() -> None:
    with pytest.raises(ModelMillError) as info:
        samples.resolve_model_path("sample:gpt5")
    assert "smollm2" in (info.value.fix or "") and "minilm" in (info.value.fix or "")


def test_sample_folder_follows_modelmill_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path))
    sample = samples.get_sample("sample:smollm2")
    assert sample.folder == tmp_path / "samples" / "smollm2" and not sample.fetched
