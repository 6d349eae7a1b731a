"""LoRA training of a diffusers pipeline's denoiser (the UNet of SD 1.5 / SDXL, the transformer of Flux).

The loop follows Olive 0.13's SDLoRA pass (``olive/passes/diffusers/lora.py``), which follows diffusers'
train_text_to_image_lora / train_dreambooth_lora scripts: the VAE and the text encoders stay frozen, LoRA layers
(peft, gaussian init) go on the denoiser's attention projections, images become VAE latents, noise is added at a
random timestep and the denoiser learns to predict it (epsilon or v-prediction for SD, with optional min-SNR
weighting; flow matching for Flux). DreamBooth trains every image on one instance prompt; prior preservation
adds class images (made with the base pipeline when there are too few) and their loss.

ModelMill adds what its LLM ``finetune`` has: a ``train.step`` event with loss, learning rate and eta per logged
step, cancel at the next step with a checkpoint kept, and resuming from that checkpoint when the same training
runs again. Differences from Olive, on purpose: on the CPU the frozen weights stay float32 (mixed precision is a
GPU setting; CPUs without AMX emulate bf16 slowly); the adapter file records its rank and alpha (diffusers' LoRA
metadata), so an alpha other than the rank is applied as trained when the adapter is loaded; SDXL's size
conditioning is (height, width) as diffusers' scripts pass it; Flux gets a guidance value only when its
transformer has a guidance embedding (FLUX.1-dev, not schnell).
"""

from __future__ import annotations

import json
import math
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelmill.errors import PassError
from modelmill.finetune.diffusion_data import (
    ImageData,
    ImageSample,
    bucket_batches,
    fit,
)
from modelmill.finetune.training import TrainingOutcome

Emit = Callable[..., Any]

SD_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
FLUX_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "add_k_proj", "add_q_proj", "add_v_proj", "to_add_out"]
VARIANTS = ("sd", "sdxl", "flux")
ADAPTER_FILE = "pytorch_lora_weights.safetensors"


@dataclass
class LoraSpec:
    r: int
    alpha: float
    dropout: float
    target_modules: list[str] | None


@dataclass
class Schedule:
    """Olive's DiffusionTrainingArguments."""

    learning_rate: float = 1e-4
    max_train_steps: int = 1000
    train_batch_size: int = 1
    gradient_accumulation_steps: int = 4
    gradient_checkpointing: bool = True
    mixed_precision: str = "bf16"
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    snr_gamma: float | None = None
    max_grad_norm: float = 1.0
    checkpointing_steps: int = 500
    logging_steps: int = 10
    seed: int | None = None
    guidance_scale: float = 3.5


@dataclass
class PriorPreservation:
    class_prompt: str
    class_images: list[ImageSample]
    weight: float = 1.0


@dataclass
class Outcome(TrainingOutcome):
    """A LoRA finetune's outcome plus what diffusion training also reports."""

    trainable_parameters: int = 0
    total_parameters: int = 0
    resumed_from: int | None = None


# ------------------------------------------------------------------ the pipeline


def detect_variant(model_path: Path) -> str | None:
    """The pipeline class in model_index.json when it names a family; else Olive's detection: the transformer's
    class name (SD3, Flux, Sana), else the UNet (SDXL: text_time conditioning or cross-attention 2048 wide and
    more; otherwise SD)."""
    index = model_path / "model_index.json"
    name = str(json.loads(index.read_text()).get("_class_name", "")) if index.exists() else ""
    for marker, variant in (("StableDiffusion3", "sd3"), ("Sana", "sana"), ("Flux", "flux"), ("XL", "sdxl"),
                            ("StableDiffusion", "sd")):
        if marker in name:
            return variant
    for folder in ("transformer", "unet"):
        config_file = model_path / folder / "config.json"
        if not config_file.exists():
            continue
        config = json.loads(config_file.read_text())
        name = str(config.get("_class_name", ""))
        if folder == "transformer":
            for marker, variant in (("Sana", "sana"), ("Flux", "flux"), ("SD3", "sd3")):
                if marker in name:
                    return variant
            continue
        wide = (config.get("cross_attention_dim") or 768) >= 2048
        return "sdxl" if wide or config.get("addition_embed_type") == "text_time" else "sd"
    return None


def _weights_variant(folder: Path) -> str | None:
    """The diffusers weight variant to load (``fp16`` ...) when the folder holds only variant files."""
    names = [p.name for p in folder.glob("*") if p.suffix in (".safetensors", ".bin")]
    plain = [n for n in names if n.count(".") == 1 or ".safetensors.index" in n or ".bin.index" in n]
    if plain or not names:
        return None
    parts = names[0].split(".")
    return parts[-2] if len(parts) >= 3 else None


def _load(cls: Any, model_path: Path, subfolder: str, **kwargs: Any) -> Any:
    folder = model_path / subfolder
    if not folder.is_dir():
        raise PassError(f"the pipeline at {model_path} has no {subfolder}/ folder", fix="point -m at a diffusers "
                        "pipeline saved with save_pretrained (model_index.json, unet/ or transformer/, vae/, "
                        "text_encoder/, tokenizer/, scheduler/)", where="input_model.model_path")
    variant = _weights_variant(folder)
    if variant:
        kwargs["variant"] = variant
    return cls.from_pretrained(str(model_path), subfolder=subfolder, **kwargs)


def _quiet() -> None:
    """No loading progress bars: the pass reports progress through run events."""
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


@dataclass
class Pipeline:
    variant: str
    denoiser: Any
    vae: Any
    text_encoders: list[Any]
    tokenizers: list[Any]
    scheduler: Any
    device: Any
    weight_dtype: Any

    @property
    def denoiser_name(self) -> str:
        return "transformer" if self.variant == "flux" else "unet"


def load_pipeline(model_path: Path, variant: str, device: str, mixed_precision: str, log: Callable[[str], None]
                  ) -> Pipeline:
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import AutoTokenizer

    _quiet()
    on_gpu = device == "cuda"
    weight_dtype = torch.float32
    if on_gpu and mixed_precision != "no":
        weight_dtype = torch.float16 if mixed_precision == "fp16" else torch.bfloat16
        if variant == "flux":
            weight_dtype = torch.bfloat16  # Olive: Flux needs bf16
    elif mixed_precision != "no":
        log(f"mixed_precision {mixed_precision} is a GPU setting: on the CPU the weights stay float32")
    tokenizers = [AutoTokenizer.from_pretrained(str(model_path), subfolder="tokenizer")]
    if variant == "flux":
        from diffusers import FluxTransformer2DModel
        from transformers import CLIPTextModel, T5EncoderModel

        text_encoders = [_load(CLIPTextModel, model_path, "text_encoder"),
                         _load(T5EncoderModel, model_path, "text_encoder_2")]
        tokenizers.append(AutoTokenizer.from_pretrained(str(model_path), subfolder="tokenizer_2"))
        denoiser = _load(FluxTransformer2DModel, model_path, "transformer")
        scheduler = None
    else:
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        text_encoders = [_load(CLIPTextModel, model_path, "text_encoder")]
        if variant == "sdxl":
            text_encoders.append(_load(CLIPTextModelWithProjection, model_path, "text_encoder_2"))
            tokenizers.append(AutoTokenizer.from_pretrained(str(model_path), subfolder="tokenizer_2"))
        denoiser = _load(UNet2DConditionModel, model_path, "unet")
        scheduler = DDPMScheduler.from_pretrained(str(model_path), subfolder="scheduler")
        if scheduler.config.prediction_type not in ("epsilon", "v_prediction"):
            raise PassError(f"the scheduler predicts {scheduler.config.prediction_type!r}; SD LoRA training "
                            "knows epsilon and v_prediction", fix="use a pipeline whose scheduler predicts "
                            "epsilon or v_prediction", where="input_model.model_path")
    vae = _load(AutoencoderKL, model_path, "vae")
    torch_device = torch.device(device)
    for module in (vae, *text_encoders, denoiser):
        module.requires_grad_(False)
        # (a dtype only when it changes: diffusers warns about casting with to() even to float32)
        module.to(torch_device, dtype=weight_dtype) if weight_dtype != torch.float32 else module.to(torch_device)
        module.eval()
    return Pipeline(variant, denoiser, vae, text_encoders, tokenizers, scheduler, torch_device, weight_dtype)


def seed_everything(seed: int | None) -> None:
    """Python's, numpy's and torch's generators (LoRA initialisation, noise, timesteps), as accelerate's set_seed."""
    if seed is None:
        return
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def add_lora(pipeline: Pipeline, lora: LoraSpec, gradient_checkpointing: bool) -> tuple[int, int]:
    """Fresh LoRA layers on the denoiser, trainable in float32; (trainable, total) parameter counts."""
    import torch
    from peft import LoraConfig

    targets = lora.target_modules or (FLUX_TARGETS if pipeline.variant == "flux" else SD_TARGETS)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, init_lora_weights="gaussian",
                        target_modules=targets)
    try:
        pipeline.denoiser.add_adapter(config)
    except ValueError as exc:
        names = sorted({name.rsplit(".", 1)[-1] for name, module in pipeline.denoiser.named_modules()
                        if type(module).__name__ == "Linear"})
        raise PassError(f"LoRA cannot wrap the {pipeline.denoiser_name}'s layers: {exc}",
                        fix=f"set --target_modules to some of its linear layers: {', '.join(names[:20])}",
                        where="target_modules") from exc
    for parameter in pipeline.denoiser.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.to(torch.float32)
    if gradient_checkpointing:
        pipeline.denoiser.enable_gradient_checkpointing()
    trainable = sum(p.numel() for p in pipeline.denoiser.parameters() if p.requires_grad)
    total = sum(p.numel() for p in pipeline.denoiser.parameters())
    return trainable, total


def lora_parameters(denoiser: Any) -> dict[str, Any]:
    return {name: p for name, p in denoiser.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------ batches


def _pixels(images: list[Any]) -> Any:
    import numpy as np
    import torch

    arrays = [np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0 for image in images]
    return torch.from_numpy(np.stack(arrays)).contiguous()


def make_batch(samples: list[ImageSample], data: ImageData, prior: PriorPreservation | None,
               class_cursor: list[int]) -> dict[str, Any]:
    """Pixels, captions and SDXL's size conditioning for one batch; class images appended after the instances."""
    images, captions, sizes, crops = [], [], [], []
    bucket = samples[0].bucket
    for sample in samples:
        images.append(fit(sample.open(), sample.bucket, data.resize))
        captions.append(sample.caption)
        sizes.append(sample.size)
        crops.append(sample.crop_top_left)
    if prior is not None:
        for _ in samples:
            cls = prior.class_images[class_cursor[0] % len(prior.class_images)]
            class_cursor[0] += 1
            image = cls.open()
            images.append(fit(image, bucket, data.resize))
            captions.append(prior.class_prompt)
            sizes.append(image.size)
            crops.append((0, 0))
    return {"pixel_values": _pixels(images), "captions": captions, "original_sizes": sizes,
            "crops_coords_top_left": crops, "bucket": bucket}


def _tokens(tokenizer: Any, captions: list[str], limit: int) -> Any:
    return tokenizer(captions, padding="max_length", max_length=limit, truncation=True,
                     return_tensors="pt").input_ids


def _clip_limit(tokenizer: Any, encoder: Any) -> int:
    return min(int(getattr(tokenizer, "model_max_length", 77) or 77), 77,
               int(getattr(encoder.config, "max_position_embeddings", 77) or 77))


def encode_prompts(pipeline: Pipeline, captions: list[str]) -> dict[str, Any]:
    """The frozen text encoders' outputs the denoiser is conditioned on."""
    import torch

    device = pipeline.device
    with torch.no_grad():
        if pipeline.variant == "flux":
            clip, t5 = pipeline.text_encoders
            clip_ids = _tokens(pipeline.tokenizers[0], captions, _clip_limit(pipeline.tokenizers[0], clip))
            pooled = clip(clip_ids.to(device), output_hidden_states=False).pooler_output
            t5_limit = min(512, int(getattr(pipeline.tokenizers[1], "model_max_length", 512) or 512))
            embeds = t5(_tokens(pipeline.tokenizers[1], captions, t5_limit).to(device))[0]
            return {"encoder_hidden_states": embeds, "pooled": pooled}
        first = pipeline.text_encoders[0]
        ids = _tokens(pipeline.tokenizers[0], captions, _clip_limit(pipeline.tokenizers[0], first)).to(device)
        if pipeline.variant == "sd":
            return {"encoder_hidden_states": first(ids, return_dict=False)[0]}
        second = pipeline.text_encoders[1]
        ids_2 = _tokens(pipeline.tokenizers[1], captions, _clip_limit(pipeline.tokenizers[1], second)).to(device)
        hidden = first(ids, output_hidden_states=True).hidden_states[-2]
        out_2 = second(ids_2, output_hidden_states=True)
        return {"encoder_hidden_states": torch.cat([hidden, out_2.hidden_states[-2]], dim=-1), "pooled": out_2[0]}


def _latents(pipeline: Pipeline, pixels: Any) -> Any:
    import torch

    with torch.no_grad():
        latents = pipeline.vae.encode(pixels.to(pipeline.device, dtype=pipeline.weight_dtype)).latent_dist.sample()
    shift = getattr(pipeline.vae.config, "shift_factor", None) if pipeline.variant == "flux" else None
    if shift:
        latents = latents - shift
    return latents * pipeline.vae.config.scaling_factor


def _mse(pred: Any, target: Any, weights: Any = None) -> Any:
    import torch.nn.functional as F

    if weights is None:
        return F.mse_loss(pred.float(), target.float(), reduction="mean")
    loss = F.mse_loss(pred.float(), target.float(), reduction="none")
    return (loss.mean(dim=list(range(1, loss.ndim))) * weights).mean()


def sd_loss(pipeline: Pipeline, batch: dict[str, Any], schedule: Schedule, prior: PriorPreservation | None) -> Any:
    import torch

    latents = _latents(pipeline, batch["pixel_values"])
    noise = torch.randn_like(latents)
    steps = torch.randint(0, pipeline.scheduler.config.num_train_timesteps, (latents.shape[0],),
                          device=latents.device).long()
    noisy = pipeline.scheduler.add_noise(latents, noise, steps).to(pipeline.weight_dtype)
    conditioning = encode_prompts(pipeline, batch["captions"])
    hidden = conditioning["encoder_hidden_states"].to(pipeline.weight_dtype)
    extra = {}
    if pipeline.variant == "sdxl":
        # (original height, width, crop top, left, target height, width), as diffusers' SDXL scripts pass it
        time_ids = [[h, w, top, left, batch["bucket"][1], batch["bucket"][0]]
                    for (w, h), (top, left) in zip(batch["original_sizes"], batch["crops_coords_top_left"])]
        extra["added_cond_kwargs"] = {"text_embeds": conditioning["pooled"].to(pipeline.weight_dtype),
                                      "time_ids": torch.tensor(time_ids, dtype=pipeline.weight_dtype,
                                                               device=latents.device)}
    pred = pipeline.denoiser(noisy, steps, hidden, return_dict=False, **extra)[0]
    if pipeline.scheduler.config.prediction_type == "v_prediction":
        target = pipeline.scheduler.get_velocity(latents, noise, steps)
    else:
        target = noise
    if prior is not None:
        pred, pred_prior = torch.chunk(pred, 2, dim=0)
        target, target_prior = torch.chunk(target, 2, dim=0)
        steps = steps[: len(steps) // 2]
    weights = None
    if schedule.snr_gamma is not None:
        from diffusers.training_utils import compute_snr

        snr = compute_snr(pipeline.scheduler, steps)
        weights = torch.stack([snr, torch.full_like(snr, schedule.snr_gamma)], dim=1).min(dim=1)[0]
        if pipeline.scheduler.config.prediction_type == "v_prediction":
            weights = weights + 1
        weights = weights / snr
    loss = _mse(pred, target, weights)
    if prior is not None:
        loss = loss + prior.weight * _mse(pred_prior, target_prior)
    return loss


def flux_loss(pipeline: Pipeline, batch: dict[str, Any], schedule: Schedule, prior: PriorPreservation | None) -> Any:
    import torch

    latents = _latents(pipeline, batch["pixel_values"])
    size, channels, height, width = latents.shape
    if height % 2 or width % 2:
        raise PassError(f"Flux packs 2x2 latent patches, but the latents are {height}x{width}",
                        fix="use bucket sizes divisible by 16 (--base_resolution)", where="base_resolution")
    packed = latents.view(size, channels, height // 2, 2, width // 2, 2).permute(0, 2, 4, 1, 3, 5) \
        .reshape(size, (height // 2) * (width // 2), channels * 4)
    noise = torch.randn_like(packed)
    sigmas = torch.rand(size, device=packed.device, dtype=torch.float32)
    noisy = (sigmas[:, None, None] * noise + (1.0 - sigmas[:, None, None]) * packed).to(pipeline.weight_dtype)
    conditioning = encode_prompts(pipeline, batch["captions"])
    embeds = conditioning["encoder_hidden_states"].to(pipeline.weight_dtype)
    image_ids = torch.zeros(height // 2, width // 2, 3, device=packed.device, dtype=pipeline.weight_dtype)
    image_ids[..., 1] = torch.arange(height // 2, device=packed.device)[:, None]
    image_ids[..., 2] = torch.arange(width // 2, device=packed.device)[None, :]
    guidance = None
    if getattr(pipeline.denoiser.config, "guidance_embeds", False):
        guidance = torch.full((size,), schedule.guidance_scale, device=packed.device, dtype=pipeline.weight_dtype)
    pred = pipeline.denoiser(hidden_states=noisy, timestep=sigmas.to(pipeline.weight_dtype), guidance=guidance,
                             pooled_projections=conditioning["pooled"].to(pipeline.weight_dtype),
                             encoder_hidden_states=embeds,
                             txt_ids=torch.zeros(embeds.shape[1], 3, device=packed.device, dtype=pipeline.weight_dtype),
                             img_ids=image_ids.reshape(-1, 3), return_dict=False)[0]
    target = noise - packed
    if prior is not None:
        pred, pred_prior = torch.chunk(pred, 2, dim=0)
        target, target_prior = torch.chunk(target, 2, dim=0)
        return _mse(pred, target) + prior.weight * _mse(pred_prior, target_prior)
    return _mse(pred, target)


# ------------------------------------------------------------------ the loop


class Reporter:
    """train.step events (step, loss, learning rate, eta) and the pass's progress line."""

    def __init__(self, emit: Emit, progress: Callable[[float, str], None], max_steps: int, first_step: int) -> None:
        self.emit, self.progress, self.max_steps = emit, progress, max(max_steps, 1)
        self.first_step, self.started = first_step, time.perf_counter()

    def step(self, step: int, epoch: float, loss: float, lr: float, grad_norm: float | None, log: bool) -> None:
        done = step - self.first_step
        elapsed = time.perf_counter() - self.started
        rate = done / elapsed if done and elapsed > 0 else None
        eta = (self.max_steps - step) / rate if rate else None
        if log:
            self.emit("train.step", step=step, max_steps=self.max_steps, epoch=round(epoch, 4), loss=_finite(loss),
                      learning_rate=_finite(lr), grad_norm=_finite(grad_norm),
                      steps_per_s=round(rate, 3) if rate else None, eta_s=round(eta, 1) if eta is not None else None)
        eta_text = f", eta {eta:.0f}s" if eta is not None else ""
        self.progress(step / self.max_steps, f"step {step}/{self.max_steps}, loss {loss:.4f}, lr {lr:.2e}{eta_text}")


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def train(pipeline: Pipeline, data: ImageData, schedule: Schedule, prior: PriorPreservation | None,
          checkpoint_dir: Path, emit: Emit, progress: Callable[[float, str], None], log: Callable[[str], None],
          cancel: threading.Event) -> Outcome:
    """Optimizer steps up to ``max_train_steps`` (resuming from the newest checkpoint in ``checkpoint_dir``)."""
    import torch
    from diffusers.optimization import get_scheduler

    params = lora_parameters(pipeline.denoiser)
    optimizer = torch.optim.AdamW(list(params.values()), lr=schedule.learning_rate, betas=(0.9, 0.999),
                                  weight_decay=1e-2, eps=1e-8)
    lr_scheduler = get_scheduler(schedule.lr_scheduler, optimizer=optimizer, num_warmup_steps=schedule.lr_warmup_steps,
                                 num_training_steps=schedule.max_train_steps)
    on_gpu = pipeline.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if on_gpu and pipeline.weight_dtype == torch.float16 else None
    batches_per_epoch = len(bucket_batches(data.samples, schedule.train_batch_size, schedule.seed, 0))
    updates_per_epoch = math.ceil(batches_per_epoch / schedule.gradient_accumulation_steps)
    epochs = math.ceil(schedule.max_train_steps / updates_per_epoch)
    step, history, class_cursor = 0, [], [0]
    resume = last_checkpoint(checkpoint_dir)
    if resume is not None:
        state = torch.load(resume, map_location="cpu", weights_only=False)
        for name, value in state["lora"].items():
            params[name].data.copy_(value.to(params[name].device))
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["lr_scheduler"])
        step, history, class_cursor = state["step"], state["history"], [state.get("class_cursor", 0)]
        log(f"resuming from step {step} (a checkpoint kept by an earlier run that stopped)")
    loss_fn = flux_loss if pipeline.variant == "flux" else sd_loss
    reporter = Reporter(emit, progress, schedule.max_train_steps, step)
    started, cancelled = time.perf_counter(), False
    pipeline.denoiser.train()
    first_epoch, skip = divmod(step, updates_per_epoch)
    for epoch in range(first_epoch, epochs):
        batches = bucket_batches(data.samples, schedule.train_batch_size, schedule.seed, epoch)
        window: list[float] = []
        for index, indices in enumerate(batches):
            if epoch == first_epoch and index < skip * schedule.gradient_accumulation_steps:
                continue  # done before the checkpoint this run resumed from
            batch = make_batch([data.samples[i] for i in indices], data, prior, class_cursor)
            with torch.autocast("cuda", dtype=pipeline.weight_dtype, enabled=on_gpu and
                                pipeline.weight_dtype != torch.float32):
                loss = loss_fn(pipeline, batch, schedule, prior)
            if not torch.isfinite(loss):
                raise PassError(f"the training loss became {loss.item()} at step {step + 1}",
                                fix="lower --learning_rate, or use --mixed_precision bf16 / no instead of fp16",
                                where="training_args.learning_rate")
            scaled = loss / schedule.gradient_accumulation_steps
            (scaler.scale(scaled) if scaler else scaled).backward()
            window.append(float(loss.detach()))
            if len(window) < schedule.gradient_accumulation_steps and index + 1 < len(batches):
                continue
            if scaler:
                scaler.unscale_(optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(list(params.values()), schedule.max_grad_norm)
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            lr = lr_scheduler.get_last_lr()[0]
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            mean_loss = sum(window) / len(window)
            window = []
            history.append({"step": step, "loss": round(mean_loss, 6), "learning_rate": lr})
            last = step >= schedule.max_train_steps
            reporter.step(step, epoch + (index + 1) / len(batches), mean_loss, lr, float(grad_norm),
                          step % schedule.logging_steps == 0 or last or step == 1)
            if cancel.is_set() and not last:
                cancelled = True
            if cancelled or (step % schedule.checkpointing_steps == 0 and not last):
                _save_checkpoint(checkpoint_dir, step, params, optimizer, lr_scheduler, history, class_cursor[0])
            if cancelled or last:
                break
        if cancelled or step >= schedule.max_train_steps:
            break
    pipeline.denoiser.eval()
    trainable = sum(p.numel() for p in params.values())
    return Outcome(step, schedule.max_train_steps, cancelled, last_checkpoint(checkpoint_dir), history,
                   time.perf_counter() - started, trainable, sum(p.numel() for p in pipeline.denoiser.parameters()),
                   None if resume is None else int(resume.stem.split("-")[-1]))


def _save_checkpoint(folder: Path, step: int, params: dict[str, Any], optimizer: Any, lr_scheduler: Any,
                     history: list[dict[str, Any]], class_cursor: int) -> None:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    state = {"lora": {name: p.detach().cpu() for name, p in params.items()}, "optimizer": optimizer.state_dict(),
             "lr_scheduler": lr_scheduler.state_dict(), "step": step, "history": history,
             "class_cursor": class_cursor}
    tmp = folder / f".checkpoint-{step}.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / f"checkpoint-{step}.pt")
    for old in folder.glob("checkpoint-*.pt"):
        if old.name != f"checkpoint-{step}.pt":
            old.unlink(missing_ok=True)


def last_checkpoint(folder: Path) -> Path | None:
    if not folder.exists():
        return None
    found = [p for p in folder.glob("checkpoint-*.pt") if p.stem.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.stem.split("-")[-1]), default=None)


# ------------------------------------------------------------------ class images (prior preservation)


def generate_class_images(model_path: Path, variant: str, prompt: str, count: int, folder: Path, device: str,
                          seed: int | None, progress: Callable[[float, str], None], cancel: threading.Event) -> None:
    """``count`` images of ``prompt`` from the base pipeline, written to ``folder`` (Olive: 50 steps, batch 4)."""
    import torch

    if variant == "flux":
        from diffusers import FluxPipeline as cls
    elif variant == "sdxl":
        from diffusers import StableDiffusionXLPipeline as cls
    else:
        from diffusers import StableDiffusionPipeline as cls
    dtype = torch.float32 if device == "cpu" else (torch.bfloat16 if variant == "flux" else torch.float16)
    kwargs = {"safety_checker": None, "requires_safety_checker": False} if variant == "sd" else {}
    _quiet()
    pipe = cls.from_pretrained(str(model_path), torch_dtype=dtype, **kwargs).to(device)
    pipe.set_progress_bar_config(disable=True)
    folder.mkdir(parents=True, exist_ok=True)
    existing = len(list(folder.glob("class_*.png")))
    generator = torch.Generator(device="cpu").manual_seed(seed if seed is not None else 0)
    made = 0
    while existing + made < count:
        if cancel.is_set():
            from modelmill.errors import RunCancelled

            raise RunCancelled()
        size = min(4, count - existing - made)
        images = pipe([prompt] * size, num_inference_steps=50, generator=generator).images
        for image in images:
            tmp = folder / f".class_{existing + made:04d}.png.tmp"
            image.save(tmp, format="PNG")
            tmp.replace(folder / f"class_{existing + made:04d}.png")
            made += 1
        progress(0.0, f"class images: {existing + made}/{count}")
    del pipe
    if device == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------ output


def save_adapter(pipeline: Pipeline, adapter_dir: Path) -> Path:
    """The denoiser's LoRA in diffusers' format (``pytorch_lora_weights.safetensors``, keys ``unet.*`` or
    ``transformer.*``), with its LoRA config as metadata; what ``pipeline.load_lora_weights`` reads."""
    import torch
    from peft import get_peft_model_state_dict

    state = {name: value.detach().to("cpu", torch.float32).contiguous()
             for name, value in get_peft_model_state_dict(pipeline.denoiser).items()}
    metadata = pipeline.denoiser.peft_config["default"].to_dict()
    adapter_dir.mkdir(parents=True, exist_ok=True)
    if pipeline.variant == "flux":
        from diffusers import FluxPipeline

        FluxPipeline.save_lora_weights(str(adapter_dir), transformer_lora_layers=state, safe_serialization=True,
                                       transformer_lora_adapter_metadata=metadata)
    elif pipeline.variant == "sdxl":
        from diffusers import StableDiffusionXLPipeline

        StableDiffusionXLPipeline.save_lora_weights(str(adapter_dir), unet_lora_layers=state, safe_serialization=True,
                                                    unet_lora_adapter_metadata=metadata)
    else:
        from diffusers import StableDiffusionPipeline

        StableDiffusionPipeline.save_lora_weights(str(adapter_dir), unet_lora_layers=state, safe_serialization=True,
                                                  unet_lora_adapter_metadata=metadata)
    return adapter_dir / ADAPTER_FILE


def save_merged(model_path: Path, variant: str, adapter_file: Path, out_dir: Path) -> None:
    """The whole pipeline at the top of ``out_dir``, its denoiser with the LoRA merged in (in the base's dtype);
    the other components are copied unchanged."""
    import torch
    from safetensors import safe_open

    name = "transformer" if variant == "flux" else "unet"
    for item in model_path.iterdir():
        if item.name == name or item.name.startswith("."):
            continue
        if item.is_dir():
            shutil.copytree(item, out_dir / item.name)
        else:
            shutil.copy2(item, out_dir / item.name)
    if variant == "flux":
        from diffusers import FluxTransformer2DModel as cls
    else:
        from diffusers import UNet2DConditionModel as cls
    denoiser = _load(cls, model_path, name, torch_dtype=torch.float32)
    dtype = torch.float32
    weights = sorted((model_path / name).glob("*.safetensors"))
    if weights:
        with safe_open(str(weights[0]), framework="pt") as handle:
            keys = list(handle.keys())
            if keys:
                dtype = handle.get_slice(keys[0]).get_dtype()
                dtype = {"F16": torch.float16, "BF16": torch.bfloat16}.get(dtype, torch.float32)
    denoiser.load_lora_adapter(str(adapter_file.parent), prefix=name, weight_name=adapter_file.name,
                               adapter_name="trained")
    denoiser.fuse_lora(lora_scale=1.0)
    denoiser.unload_lora()
    (denoiser.to(dtype) if dtype != torch.float32 else denoiser).save_pretrained(str(out_dir / name),
                                                                                 safe_serialization=True)
