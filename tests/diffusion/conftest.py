"""Fixtures of the diffusion-lora tests: tiny random pipelines (built once per session) and training images."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMILL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def sd_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusion_helpers import save_sd_pipeline

    return save_sd_pipeline(tmp_path_factory.mktemp("sd_pipeline"))


@pytest.fixture(scope="session")
def pipeline_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder that looks like an SD pipeline (model_index.json, unet/config.json) but has no weights: enough for
    the config, the plan and the checks before training."""
    import json

    folder = tmp_path_factory.mktemp("pipeline_folder")
    (folder / "unet").mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (folder / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DConditionModel",
                                                             "cross_attention_dim": 768}))
    return folder


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from diffusion_helpers import write_images

    return write_images(tmp_path_factory.mktemp("images") / "train")
