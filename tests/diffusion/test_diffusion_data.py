"""diffusion-lora's images: Olive's image data configs read locally, captions, buckets, filtering (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from diffusion_helpers import write_images
from modelmill.errors import PassError
from modelmill.finetune import diffusion_data as dd


def _load(data_dir: Path, **pre: object) -> dd.ImageData:
    return dd.load_images("image_folder_dataset", {"data_dir": str(data_dir)}, "image_lora_preprocess" if pre else None,
                          dict(pre), data_dir / ".cache")


def test_folder_images_take_their_caption_files_recursively(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "data", count=2)
    write_images(folder / "concept", count=1, captions=False)
    (folder / "notes.txt").write_text("not an image")
    data = _load(folder, base_resolution=16)
    by_name = {s.name: s.caption for s in data.samples}
    assert by_name == {"image0.png": "a red cat", "image1.png": "a blue dog", "concept/image0.png": ""}
    prompted = dd.load_images("image_folder_dataset", {"data_dir": str(folder)}, None, {}, tmp_path,
                              instance_prompt="a photo of sks toy")
    assert {s.caption for s in prompted.samples} == {"a photo of sks toy"}
    flat = dd.load_images("image_folder_dataset", {"data_dir": str(folder), "recursive": False,
                                                   "default_caption": "x"}, None, {}, tmp_path)
    assert len(flat.samples) == 2


def test_buckets_follow_olive() -> None:
    assert dd.generate_buckets(512) == dd.SD15_BUCKETS and dd.generate_buckets(1024) == dd.SDXL_BUCKETS
    buckets = dd.generate_buckets(768)
    assert (768, 768) in buckets and all(w % 64 == 0 and h % 64 == 0 for w, h in buckets)
    assert all(abs(w * h - 768 * 768) / (768 * 768) < 0.2 for w, h in buckets)
    assert dd.best_bucket(1600, 900, dd.SD15_BUCKETS) == (672, 384)  # 16:9 → the 1.75 bucket
    assert dd.best_bucket(500, 500, dd.SD15_BUCKETS) == (512, 512)
    small = dd.generate_buckets(16)
    assert (16, 16) in small and all(w % 8 == 0 and h % 8 == 0 for w, h in small)


def test_cover_and_contain_fit_the_bucket(tmp_path: Path) -> None:
    from PIL import Image

    folder = write_images(tmp_path / "data", count=1, size=(40, 20))
    data = _load(folder, base_resolution=16, steps={"image_resizing": {"target_resolution": 16}})
    [sample] = data.samples
    assert sample.size == (40, 20) and sample.bucket == (16, 16)
    assert sample.crop_top_left == (0, 8)  # 40x20 → 32x16, centre crop starts 8 px in
    assert dd.fit(sample.open(), sample.bucket, data.resize).size == (16, 16)
    contain = dd.Resize([(16, 16)], mode="contain", fill_color=(0, 0, 0))
    padded = dd.fit(Image.new("RGB", (40, 20), (255, 255, 255)), (16, 16), contain)
    assert padded.getpixel((0, 0)) == (0, 0, 0) and padded.getpixel((8, 8)) == (255, 255, 255)


def test_filtering_and_batches_by_bucket(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "data", count=3, size=(32, 32))
    write_images(tmp_path / "data" / "wide", count=2, size=(64, 16))
    data = _load(folder, base_resolution=32, steps={"image_filtering": {"min_size": 8, "max_aspect_ratio": 2.0},
                                                    "aspect_ratio_bucketing": {}})
    assert len(data.samples) == 3 and data.filtered == {"aspect_ratio": 2}
    mixed = _load(folder, base_resolution=32)
    batches = dd.bucket_batches(mixed.samples, 2, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert all(len({mixed.samples[i].bucket for i in b}) == 1 for b in batches)
    assert batches == dd.bucket_batches(mixed.samples, 2, seed=1, epoch=0)


def test_local_dataset_with_image_and_caption_columns(tmp_path: Path) -> None:
    import datasets
    from PIL import Image

    rows = {"picture": [Image.new("RGB", (24, 24), (10 * i, 0, 0)) for i in range(3)], "text": ["a", "b", "c"]}
    features = datasets.Features({"picture": datasets.Image(), "text": datasets.Value("string")})
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path / "ds"))
    data = dd.load_images("huggingface_dataset", {"data_name": str(tmp_path / "ds"), "split": "train",
                                                  "image_column": "picture", "caption_column": "text"},
                          None, {"base_resolution": 16}, tmp_path / "cache")
    assert [s.caption for s in data.samples] == ["a", "b", "c"] and data.samples[0].size == (24, 24)
    with pytest.raises(PassError, match="'image' is not in"):
        dd.load_images("huggingface_dataset", {"data_name": str(tmp_path / "ds")}, None, {}, tmp_path / "cache")


@pytest.mark.parametrize("pre, message", [
    ({"steps": {"auto_caption": {}}}, "captioning model"),
    ({"steps": {"resize_everything": {}}}, "unknown preprocessing step"),
    ({"steps": {"aspect_ratio_bucketing": {"custom_buckets": [[20, 16]]}}}, "multiple of 8"),
])
def test_preprocessing_refusals(tmp_path: Path, pre: dict, message: str) -> None:
    folder = write_images(tmp_path / "data", count=1)
    with pytest.raises(PassError, match=message):
        _load(folder, **pre)


def test_missing_or_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PassError, match="does not exist"):
        _load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PassError, match="no training images"):
        _load(tmp_path / "empty")


def test_stamp_changes_with_an_image(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "data", count=1)
    before = dd.stamp_digest(dd.data_stamp({"data_dir": str(folder)}))
    (folder / "image0.txt").write_text(json.dumps("a different caption"))
    assert dd.stamp_digest(dd.data_stamp({"data_dir": str(folder)})) != before
