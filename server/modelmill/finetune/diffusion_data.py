"""Training images for diffusion LoRA: Olive's image data configs, read locally, bucketed and batched in memory.

Olive's ``diffusion-lora`` writes an ``ImageDataContainer`` data config: ``image_folder_dataset`` (a folder of
images, each with an optional ``.txt`` caption beside it, searched recursively) or ``huggingface_dataset``
(an image column and a caption column), then ``image_lora_preprocess`` (aspect-ratio bucketing at a base
resolution by default, or a fixed square ``image_resizing``). The same configs are read here, with two
differences: a data set must be local (a ``datasets.save_to_disk`` folder or Parquet/JSON files; ModelMill does not
download), and images are resized in memory when a batch is made; Olive rewrites the files in the data folder.

Only the standard library at the top: PIL is imported where images are opened.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelmill.errors import PassError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tiff", ".tif"}
RESIZE_MODES = ("cover", "contain")
CROP_POSITIONS = ("center", "top", "bottom", "left", "right")
RESAMPLE_MODES = ("lanczos", "bilinear", "bicubic", "nearest")
# Olive's preprocessing steps, in the order image_lora_preprocess runs them.
STEPS = ("image_filtering", "auto_caption", "auto_tagging", "image_resizing", "aspect_ratio_bucketing")
CAPTION_STEPS = ("auto_caption", "auto_tagging", "blip2_caption", "florence2_caption", "wd14_tagging")

# Olive's bucket tables (width, height) for its two standard base resolutions.
SD15_BUCKETS = [(512, 512), (576, 448), (448, 576), (608, 416), (416, 608), (672, 384), (384, 672), (768, 320),
                (320, 768)]
SDXL_BUCKETS = [(1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216), (1344, 768), (768, 1344),
                (1536, 640), (640, 1536)]


@dataclass
class ImageSample:
    """One training image: a file, or an image a data set holds (PIL), with its caption."""

    source: Any
    caption: str
    name: str
    size: tuple[int, int] = (0, 0)
    """(width, height) of the original image."""
    bucket: tuple[int, int] = (0, 0)
    """(width, height) the image is resized to."""
    crop_top_left: tuple[int, int] = (0, 0)

    def open(self) -> Any:
        from PIL import Image

        image = Image.open(self.source) if isinstance(self.source, (str, Path)) else self.source
        image.load()
        return image if image.mode == "RGB" else image.convert("RGB")


@dataclass
class Resize:
    """How every image is fitted to its bucket."""

    buckets: list[tuple[int, int]]
    mode: str = "cover"
    crop_position: str = "center"
    resample: str = "lanczos"
    fill_color: tuple[int, int, int] = (255, 255, 255)


@dataclass
class ImageData:
    samples: list[ImageSample]
    resize: Resize
    source: str
    filtered: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------ reading Olive's data configs


def describe_source(load: dict[str, Any]) -> str:
    return str(load.get("data_dir") or load.get("data_name") or "?")


def load_images(load_type: str | None, load: dict[str, Any], pre_type: str | None, pre: dict[str, Any],
                cache_dir: Path, instance_prompt: str | None = None, default_base: int = 512) -> ImageData:
    """The training images an Olive ``ImageDataContainer`` config names, filtered and assigned to buckets.

    ``default_base``: the base resolution when the config sets none (Olive's is always 512; the pass passes the
    pipeline's own: 1024 for SDXL and Flux)."""
    steps, base_resolution = preprocess_steps(pre_type, pre, default_base)
    if load_type in (None, "image_folder_dataset") and load.get("data_dir"):
        samples = folder_samples(Path(str(load["data_dir"])).expanduser(), bool(load.get("recursive", True)),
                                 load.get("default_caption"), bool(load.get("shuffle_tags")),
                                 str(load.get("tag_separator", ", ")), instance_prompt or load.get("instance_prompt"))
    elif load_type in (None, "huggingface_dataset") and load.get("data_name"):
        samples = dataset_samples(str(load["data_name"]), str(load.get("split") or "train"),
                                  str(load.get("image_column") or "image"), load.get("caption_column"), cache_dir,
                                  instance_prompt)
    else:
        raise PassError(f"train_data_config: load_dataset_config {load_type or ''} names no images",
                        fix="use {\"type\": \"image_folder_dataset\", \"params\": {\"data_dir\": FOLDER}} "
                            "(diffusion-lora -d FOLDER) or {\"type\": \"huggingface_dataset\", \"params\": "
                            "{\"data_name\": LOCAL_DATASET}} (--data_name)",
                        where="train_data_config.load_dataset_config")
    max_samples = load.get("max_samples")
    if isinstance(max_samples, int) and max_samples < len(samples):
        samples = samples[:max_samples]
    source = describe_source(load)
    if not samples:
        raise PassError(f"no training images found in {source}",
                        fix=f"put images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the folder, each with an "
                            "optional caption in a .txt file of the same name", where="train_data_config")
    filtered: dict[str, int] = {}
    if "image_filtering" in steps:
        samples, filtered = filter_images(samples, **steps["image_filtering"])
        if not samples:
            raise PassError(f"image_filtering removed every image of {source} ({_counts(filtered)})",
                            fix="relax min_size / min_aspect_ratio / max_aspect_ratio, or add larger images",
                            where="train_data_config.pre_process_data_config")
    resize = _resize_settings(steps, base_resolution)
    for sample in samples:
        _measure(sample)
        assign_bucket(sample, resize)
    return ImageData(samples, resize, source, filtered)


def preprocess_steps(pre_type: str | None, pre: dict[str, Any],
                     default_base: int = 512) -> tuple[dict[str, dict[str, Any]], int]:
    """The preprocessing steps to run with their parameters, and the base resolution."""
    base = int(pre.get("base_resolution") or default_base)
    if pre_type in (None, "image_lora_preprocess"):
        steps = pre.get("steps")
        steps = {"aspect_ratio_bucketing": {}} if steps is None else dict(steps)
    elif pre_type in STEPS or pre_type in CAPTION_STEPS:
        steps = {pre_type: {k: v for k, v in pre.items() if k != "base_resolution"}}
    else:
        raise PassError(f"pre_process_data_config type {pre_type!r} is not an image preprocessing step",
                        fix="use image_lora_preprocess (base_resolution, steps) or one of its steps: "
                            + ", ".join(s for s in STEPS if s not in CAPTION_STEPS),
                        where="train_data_config.pre_process_data_config.type")
    for name in steps:
        if name in CAPTION_STEPS:
            raise PassError(f"the {name} preprocessing step writes captions with a captioning model (BLIP-2, "
                            "Florence-2 or WD14), which ModelMill does not download or run",
                            fix="write a caption .txt file beside each image (or use --instance_prompt), and drop "
                                f"{name} from the steps", where="train_data_config.pre_process_data_config.steps")
        if name not in STEPS:
            raise PassError(f"unknown preprocessing step {name!r}", fix=f"use {', '.join(STEPS[:1] + STEPS[3:])}",
                            where="train_data_config.pre_process_data_config.steps")
    if not steps.keys() & {"image_resizing", "aspect_ratio_bucketing"}:
        steps["aspect_ratio_bucketing"] = {}  # training needs every image at a bucket size
    return {name: dict(value or {}) for name, value in steps.items()}, base


def folder_samples(folder: Path, recursive: bool = True, default_caption: str | None = None,
                   shuffle_tags: bool = False, tag_separator: str = ", ",
                   instance_prompt: str | None = None) -> list[ImageSample]:
    """Images of a folder (and its subfolders), each captioned by the .txt file of the same name."""
    if not folder.is_dir():
        raise PassError(f"image folder {folder} does not exist" if not folder.exists() else
                        f"{folder} is not a folder", fix="pass a folder of training images with -d / --data_dir",
                        where="train_data_config.load_dataset_config.data_dir")
    found = folder.rglob("*") if recursive else folder.glob("*")
    images = sorted({p for p in found if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS})
    samples = []
    for image in images:
        caption = instance_prompt
        if caption is None:
            text = image.with_suffix(".txt")
            caption = text.read_text(encoding="utf-8").strip() if text.exists() else (default_caption or "")
            if shuffle_tags and tag_separator in caption:
                tags = [t.strip() for t in caption.split(tag_separator)]
                random.shuffle(tags)
                caption = tag_separator.join(tags)
        samples.append(ImageSample(image, caption, str(image.relative_to(folder))))
    return samples


def dataset_samples(data_name: str, split: str, image_column: str, caption_column: str | None, cache_dir: Path,
                    instance_prompt: str | None = None) -> list[ImageSample]:
    """Images of a local data set's image column, captioned by its caption column."""
    from modelmill.finetune.dataset import load_split

    rows = load_split(data_name, split, cache_dir)
    columns = list(rows.column_names)
    for flag, column in (("--image_column", image_column), ("--caption_column", caption_column)):
        if column is not None and column not in columns:
            raise PassError(f"column {column!r} is not in {data_name}; it has {', '.join(columns)}",
                            fix=f"pass one of those with {flag}", where=f"train_data_config.load_dataset_config."
                                                                        f"{flag.lstrip('-')}")
    samples = []
    for index, row in enumerate(rows):
        image = row[image_column]
        if isinstance(image, dict) and ("bytes" in image or "path" in image):  # an undecoded Image feature
            image = _decode(image, Path(data_name))
        elif isinstance(image, str):
            image = Path(data_name).expanduser() / image if not Path(image).is_absolute() else Path(image)
        if not hasattr(image, "size") and not isinstance(image, Path):
            raise PassError(f"row {index} of {data_name}: column {image_column!r} holds {type(image).__name__}, "
                            "not an image", fix="pass the column that holds the images with --image_column",
                            where="train_data_config.load_dataset_config.image_column")
        caption = instance_prompt if instance_prompt is not None else \
            str(row.get(caption_column) or "") if caption_column else ""
        samples.append(ImageSample(image, caption, f"{split}[{index}]"))
    return samples


def _decode(value: dict[str, Any], base: Path) -> Any:
    import io

    from PIL import Image

    if value.get("bytes"):
        return Image.open(io.BytesIO(value["bytes"]))
    return Path(value["path"]) if Path(value["path"]).is_absolute() else base.expanduser() / value["path"]


def _measure(sample: ImageSample) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(sample.source, (str, Path)):
            with Image.open(sample.source) as image:
                sample.size = image.size
        else:
            sample.size = tuple(sample.source.size)  # type: ignore[assignment]
    except (OSError, UnidentifiedImageError) as exc:
        raise PassError(f"cannot read image {sample.name}: {exc}", fix="remove or replace the file",
                        where="train_data_config") from exc


def filter_images(samples: list[ImageSample], min_size: int = 256, min_aspect_ratio: float = 0.5,
                  max_aspect_ratio: float = 2.0, remove_duplicates: bool = False,
                  blur_threshold: float | None = None) -> tuple[list[ImageSample], dict[str, int]]:
    """Olive's image_filtering: too small, too narrow or wide, duplicate (same bytes) or blurry images leave."""
    kept, reasons, seen = [], {}, set()
    for sample in samples:
        _measure(sample)
        width, height = sample.size
        reason = None
        if width < min_size or height < min_size:
            reason = "too_small"
        elif not min_aspect_ratio <= width / height <= max_aspect_ratio:
            reason = "aspect_ratio"
        elif remove_duplicates:
            digest = hashlib.md5(sample.open().tobytes()).hexdigest()
            reason = "duplicate" if digest in seen else None
            seen.add(digest)
        if reason is None and blur_threshold is not None and _sharpness(sample) < blur_threshold:
            reason = "blurry"
        if reason:
            reasons[reason] = reasons.get(reason, 0) + 1
        else:
            kept.append(sample)
    return kept, reasons


def _sharpness(sample: ImageSample) -> float:
    """Variance of the Laplacian of the grey image (Olive's blur score)."""
    import numpy as np

    grey = np.asarray(sample.open().convert("L"), dtype=np.float32)
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    laplacian = (grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1])
    return float(laplacian.var())


def _counts(reasons: dict[str, int]) -> str:
    return ", ".join(f"{count} {reason.replace('_', ' ')}" for reason, count in sorted(reasons.items())) or "none"


# ------------------------------------------------------------------ buckets


def _resize_settings(steps: dict[str, dict[str, Any]], base_resolution: int) -> Resize:
    if "image_resizing" in steps and "aspect_ratio_bucketing" not in steps:
        params = steps["image_resizing"]
        target = int(params.get("target_resolution") or base_resolution)
        buckets = [(target, target)]
    else:
        params = steps.get("aspect_ratio_bucketing", {})
        base = int(params.get("base_resolution") or base_resolution)
        custom = params.get("custom_buckets")
        buckets = [(int(w), int(h)) for w, h in custom] if custom else generate_buckets(base)
    for width, height in buckets:
        if width % 8 or height % 8 or width <= 0 or height <= 0:
            raise PassError(f"bucket {width}x{height} is not a multiple of 8: the VAE halves the size three times",
                            fix="use a base resolution (--base_resolution) or bucket sizes divisible by 8",
                            where="train_data_config.pre_process_data_config")
    resize = Resize(buckets, str(params.get("resize_mode", "cover")), str(params.get("crop_position", "center")),
                    str(params.get("resample_mode", "lanczos")), tuple(params.get("fill_color", (255, 255, 255))))
    for value, allowed, name in ((resize.mode, RESIZE_MODES, "resize_mode"),
                                 (resize.crop_position, CROP_POSITIONS, "crop_position"),
                                 (resize.resample, RESAMPLE_MODES, "resample_mode")):
        if value not in allowed:
            raise PassError(f"{name} {value!r} is not one of {', '.join(allowed)}", fix="use one of those",
                            where=f"train_data_config.pre_process_data_config.{name}")
    return resize


def generate_buckets(base_resolution: int) -> list[tuple[int, int]]:
    """Olive's buckets: its tables at 512 and 1024; else sizes of about base² pixels, aspect up to 2.5.

    Olive generates those with sides from 256 in steps of 64, which gives no bucket below a base of about 200;
    smaller bases (test pipelines) step by an eighth of the base instead, never below 8.
    """
    if base_resolution == 512:
        return list(SD15_BUCKETS)
    if base_resolution == 1024:
        return list(SDXL_BUCKETS)
    divisor = 64 if base_resolution >= 256 else max(8, base_resolution // 8 // 8 * 8)
    min_dim = 256 if base_resolution >= 256 else max(divisor, base_resolution // 2 // divisor * divisor)
    max_dim = base_resolution * 2
    target = base_resolution * base_resolution
    buckets = set()
    for width in range(min_dim, max_dim + 1, divisor):
        height = round(target / width / divisor) * divisor
        if min_dim <= height <= max_dim and 1 / 2.5 <= width / height <= 2.5:
            buckets.add((width, height))
    if base_resolution % 8 == 0:
        buckets.add((base_resolution, base_resolution))
    if not buckets:
        raise PassError(f"no bucket sizes for base resolution {base_resolution}",
                        fix="use a base resolution divisible by 8 (512 for SD 1.5, 1024 for SDXL and Flux)",
                        where="train_data_config.pre_process_data_config.base_resolution")
    return sorted(buckets, key=lambda b: (abs(b[0] / b[1] - 1), -b[0] * b[1]))


def best_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    """Olive's choice: the closest aspect ratio (log scale), with a penalty for upscaling."""
    aspect, best, score = width / height, buckets[0], float("inf")
    for bucket_w, bucket_h in buckets:
        candidate = abs(math.log(aspect) - math.log(bucket_w / bucket_h)) + \
            max(0.0, max(bucket_w / width, bucket_h / height) - 1) * 0.5
        if candidate < score:
            best, score = (bucket_w, bucket_h), candidate
    return best


def assign_bucket(sample: ImageSample, resize: Resize) -> None:
    sample.bucket = best_bucket(*sample.size, resize.buckets)
    sample.crop_top_left = crop_top_left(sample.size, sample.bucket, resize)


def _cover_size(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    if width / height > target_w / target_h:
        return int(target_h * width / height), target_h
    return target_w, int(target_w * height / width)


def _contain_size(width: int, height: int, target_w: int, target_h: int) -> tuple[int, int]:
    if width / height > target_w / target_h:
        return target_w, int(target_w * height / width)
    return int(target_h * width / height), target_h


def _crop_box(size: tuple[int, int], target: tuple[int, int], position: str) -> tuple[int, int]:
    """(left, top) of the crop of a ``size`` image to ``target``."""
    (width, height), (target_w, target_h) = size, target
    left, top = (width - target_w) // 2, (height - target_h) // 2
    if position == "top":
        top = 0
    elif position == "bottom":
        top = height - target_h
    elif position == "left":
        left = 0
    elif position == "right":
        left = width - target_w
    return max(0, left), max(0, top)


def crop_top_left(size: tuple[int, int], bucket: tuple[int, int], resize: Resize) -> tuple[int, int]:
    """(top, left) of the crop, for SDXL's micro-conditioning; (0, 0) when the image is padded."""
    if resize.mode != "cover":
        return (0, 0)
    left, top = _crop_box(_cover_size(*size, *bucket), bucket, resize.crop_position)
    return (top, left)


def fit(image: Any, bucket: tuple[int, int], resize: Resize) -> Any:
    """``image`` resized to ``bucket``: cover (scale then crop) or contain (scale then pad)."""
    from PIL import Image

    resample = {"lanczos": Image.LANCZOS, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "nearest": Image.NEAREST}[resize.resample]
    if resize.mode == "cover":
        scaled = image.resize(_cover_size(*image.size, *bucket), resample)
        left, top = _crop_box(scaled.size, bucket, resize.crop_position)
        return scaled.crop((left, top, left + bucket[0], top + bucket[1]))
    scaled = image.resize(_contain_size(*image.size, *bucket), resample)
    canvas = Image.new("RGB", bucket, tuple(resize.fill_color))
    canvas.paste(scaled, ((bucket[0] - scaled.size[0]) // 2, (bucket[1] - scaled.size[1]) // 2))
    return canvas


def bucket_batches(samples: list[ImageSample], batch_size: int, seed: int | None, epoch: int) -> list[list[int]]:
    """Indices of ``samples`` in batches whose images share a bucket, shuffled per epoch (Olive's sampler)."""
    rng = random.Random(None if seed is None else seed + epoch)
    by_bucket: dict[tuple[int, int], list[int]] = {}
    for index, sample in enumerate(samples):
        by_bucket.setdefault(sample.bucket, []).append(index)
    batches = []
    for indices in by_bucket.values():
        indices = list(indices)
        rng.shuffle(indices)
        batches.extend(indices[i:i + batch_size] for i in range(0, len(indices), batch_size))
    rng.shuffle(batches)
    return batches


def data_stamp(load: dict[str, Any]) -> list[Any]:
    """Name, size and mtime of every file the data config reads: a changed image or caption changes it."""
    stamps: list[Any] = []
    for key in ("data_dir", "data_name", "class_data_dir"):
        value = load.get(key)
        if not isinstance(value, str):
            continue
        path = Path(value).expanduser()
        if not path.exists():
            stamps.append((key, value, None))
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        stamps.extend((key, str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return stamps


def stamp_digest(stamps: list[Any]) -> str:
    return hashlib.sha256(json.dumps(stamps, default=str).encode()).hexdigest()[:24]
