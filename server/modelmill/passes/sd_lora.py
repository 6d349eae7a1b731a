"""SDLoRA: LoRA training for a diffusers pipeline (SD 1.5, SDXL, Flux) on local images, as Olive 0.13's pass.

The loop is in ``finetune/diffusion_training.py``, the images in ``finetune/diffusion_data.py``; this module
declares the parameters (Olive's names and defaults), checks them, and writes the output:

    adapter/pytorch_lora_weights.safetensors   the denoiser's LoRA in diffusers' format (pipe.load_lora_weights)
    training_log.json                          settings, data, loss per step
    model_index.json, unet/ ...                with merge_lora: the pipeline with the LoRA merged in
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from modelmill.engine.cancel import graceful_cancel
from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.base import Pass, PassParams

MODEL_VARIANTS = ("auto", "sd", "sdxl", "sd3", "flux", "sana")
LR_SCHEDULERS = ("constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup")


class DiffusionTrainingArgs(PassParams):
    """Olive's DiffusionTrainingArguments."""

    learning_rate: float = Field(1e-4, gt=0, description="Peak learning rate (AdamW, weight decay 0.01).")
    max_train_steps: int = Field(1000, ge=1, description="Optimizer steps to train.")
    train_batch_size: int = Field(1, ge=1, description="Images per batch (a batch holds images of one bucket).")
    gradient_accumulation_steps: int = Field(4, ge=1, description="Batches whose gradients add up before an "
                                             "optimizer step.")
    gradient_checkpointing: bool = Field(True, description="Recompute activations in the backward pass to save "
                                         "memory (slower).")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        "bf16", description="Dtype of the frozen weights on the GPU (the LoRA weights train in float32); on the CPU "
                            "ModelMill keeps float32. Flux always uses bf16 on the GPU.")
    lr_scheduler: Literal[LR_SCHEDULERS] = Field(  # type: ignore[valid-type]
        "constant", description="Learning-rate schedule (diffusers' get_scheduler).")
    lr_warmup_steps: int = Field(0, ge=0, description="Warm-up steps of the schedule.")
    snr_gamma: float | None = Field(None, gt=0, description="Min-SNR loss weighting (SD/SDXL; 5.0 is usual); "
                                    "unset: plain MSE.")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    checkpointing_steps: int = Field(500, ge=1, description="Keep a checkpoint every this many steps (a cancelled "
                                     "or crashed run resumes from the last one).")
    logging_steps: int = Field(10, ge=1, description="Report loss and learning rate every this many steps (and the "
                               "first and last step).")
    seed: int | None = Field(None, description="Random seed of data order, noise and LoRA initialisation.")
    guidance_scale: float = Field(3.5, description="Flux: the guidance value given to a guidance-distilled "
                                  "transformer (FLUX.1-dev) while training.")


class SDLoRAParams(PassParams):
    model_variant: Literal[MODEL_VARIANTS] = Field(  # type: ignore[valid-type]
        "auto", description="Pipeline family: sd (SD 1.x/2.x UNet), sdxl, flux; auto reads it from the pipeline "
                            "folder. sd3 and sana are Olive names that its pass does not train either.")
    r: int = Field(16, ge=1, description="LoRA rank (SD: 4-16, Flux: 16-64).")
    alpha: float | None = Field(None, gt=0, description="LoRA alpha: the update is scaled by alpha / r (default: r).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input during training.")
    target_modules: list[str] | None = Field(None, description="Denoiser modules to adapt; default: to_k, to_q, "
                                             "to_v, to_out.0 (SD/SDXL), plus add_k_proj, add_q_proj, add_v_proj, "
                                             "to_add_out (Flux).")
    train_data_config: str | dict[str, Any] = Field(description="Training images: the name of a data_configs entry "
                                                    "or one inline. load_dataset_config: image_folder_dataset "
                                                    "(data_dir: images with .txt captions beside them) or "
                                                    "huggingface_dataset (data_name: a local data set, split, "
                                                    "image_column, caption_column); pre_process_data_config: "
                                                    "image_lora_preprocess (base_resolution, steps).")
    training_args: DiffusionTrainingArgs = Field(default_factory=DiffusionTrainingArgs,
                                                 description="Training settings (Olive's DiffusionTrainingArguments).")
    merge_lora: bool = Field(False, description="Also write the pipeline with the LoRA merged into its denoiser at "
                             "the top of the output (the adapter stays in adapter/).")
    dreambooth: bool = Field(False, description="DreamBooth: train every image on instance_prompt.")
    instance_prompt: str | None = Field(None, description="The prompt naming the subject, e.g. 'a photo of sks "
                                        "dog'; used for every image when set.")
    with_prior_preservation: bool = Field(False, description="DreamBooth: also train on class images with "
                                          "class_prompt, so the class keeps its look.")
    class_prompt: str | None = Field(None, description="Prompt of the class images, e.g. 'a photo of a dog'.")
    class_data_dir: str | None = Field(None, description="Folder of class images; when it holds fewer than "
                                       "num_class_images, the rest are generated with the base pipeline (kept in "
                                       "ModelMill's cache, not written to this folder).")
    num_class_images: int = Field(200, ge=1, description="Class images for prior preservation.")
    path_params: ClassVar[tuple[str, ...]] = ("class_data_dir",)
    prior_loss_weight: float = Field(1.0, ge=0, description="Weight of the class images' loss.")

    @model_validator(mode="after")
    def _dreambooth(self) -> SDLoRAParams:
        # Olive's checks, at config time instead of at run time
        if self.dreambooth and not self.instance_prompt:
            raise ValueError("dreambooth needs instance_prompt (e.g. 'a photo of sks dog')")
        if self.with_prior_preservation and not self.dreambooth:
            raise ValueError("with_prior_preservation needs dreambooth")
        if self.with_prior_preservation and not self.class_prompt:
            raise ValueError("with_prior_preservation needs class_prompt (e.g. 'a photo of a dog')")
        return self


class SDLoRA(Pass):
    name = "SDLoRA"
    description = ("Trains a LoRA adapter for a diffusers pipeline's denoiser (the UNet of SD 1.5 / SDXL, the "
                   "transformer of Flux) on local images with captions, optionally DreamBooth with prior "
                   "preservation. Writes adapter/pytorch_lora_weights.safetensors (diffusers' format: "
                   "pipe.load_lora_weights) and training_log.json, and with merge_lora the merged pipeline; loss "
                   "and learning rate stream as run events and cancel stops at the next step, keeping a checkpoint "
                   "to resume from.")
    Params = SDLoRAParams
    accepts = frozenset({"diffusers"})
    produces = "diffusers"
    cancel_grace_s: ClassVar[float] = 120.0

    @classmethod
    def cache_context(cls, params: PassParams) -> dict[str, Any] | None:
        """The class images are inputs of the output: their folder's content digest. (The training images, read
        through train_data_config, are in the key like every data config's files: engine/data_inputs.py.)"""
        from modelmill.engine.data_inputs import path_digest

        assert isinstance(params, SDLoRAParams)
        if not params.class_data_dir:
            return None
        folder = Path(params.class_data_dir).expanduser()
        return {"class_data_dir": [str(folder), path_digest(folder)]}

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, SDLoRAParams)
        import torch

        from modelmill.errors import RunCancelled
        from modelmill.finetune import diffusion_training as training

        if model.attributes.get("adapter_path"):
            raise PassError("the input pipeline already has a LoRA adapter", fix="start from the base pipeline, or "
                            "train with merge_lora and start from its output", where="input_model.adapter_path")
        if not (model.path / "model_index.json").exists():
            raise PassError(f"{model.path} is not a diffusers pipeline folder (no model_index.json)",
                            fix="point the model at a pipeline saved with save_pretrained", where="input_model")
        variant = _variant(model, params)
        device = "cuda" if ctx.accelerator.device == "gpu" else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise PassError(f"training on the GPU was asked for, but this torch ({torch.__version__}) sees no CUDA "
                            "device", fix="install a CUDA build of torch on a machine with an NVIDIA GPU, or use "
                            "--device cpu", where="systems.accelerators.device")
        ctx.progress(0.0, "reading the images")
        data, data_desc = _images(params, ctx, 512 if variant == "sd" else 1024)
        ctx.log(f"{len(data.samples)} training images from {data.source} in "
                f"{len({s.bucket for s in data.samples})} bucket(s): "
                + ", ".join(sorted({f'{w}x{h}' for w, h in (s.bucket for s in data.samples)})))
        if data.filtered:
            ctx.log("image_filtering left out " + ", ".join(f"{n} {r}" for r, n in sorted(data.filtered.items())))
        schedule = training.Schedule(**params.training_args.model_dump())
        prior = _prior(model, variant, params, schedule, device, ctx) if params.with_prior_preservation else None
        ctx.progress(0.0, "loading the pipeline")
        training.seed_everything(schedule.seed)
        pipeline = training.load_pipeline(model.path, variant, device, schedule.mixed_precision, ctx.log)
        alpha = params.alpha if params.alpha is not None else float(params.r)
        trainable, total = training.add_lora(pipeline, training.LoraSpec(params.r, alpha, params.lora_dropout,
                                                                         params.target_modules),
                                             schedule.gradient_checkpointing)
        ctx.log(f"{variant} {pipeline.denoiser_name} LoRA r={params.r} alpha={alpha:g}: {trainable:,} of {total:,} "
                f"parameters train ({100 * trainable / total:.2f}%)")
        checkpoints = ctx.cache_dir / "sd-lora-checkpoints" / _checkpoint_key(model, params, data_desc, device)
        with graceful_cancel():
            outcome = training.train(pipeline, data, schedule, prior, checkpoints,
                                     lambda type, **f: ctx.bus.emit(type, pass_name=ctx.pass_name, **f),
                                     ctx.progress, ctx.log, ctx.cancel)
        if outcome.cancelled:
            ctx.warn(f"training stopped at step {outcome.steps} of {outcome.max_steps}; the LoRA of that step is "
                     f"kept in {outcome.checkpoint}; run the same command again to resume from it")
            raise RunCancelled()
        ctx.progress(1.0, "saving the adapter" + (" and the merged pipeline" if params.merge_lora else ""))
        adapter_file = training.save_adapter(pipeline, ctx.output_dir / "adapter")
        del pipeline
        if params.merge_lora:
            training.save_merged(model.path, variant, adapter_file, ctx.output_dir)
        losses = [entry["loss"] for entry in outcome.log_history]
        log = {"base_model": str(model.path), "model_variant": variant, "train_data": data_desc,
               "images": len(data.samples),
               "buckets": sorted({f"{w}x{h}" for w, h in (s.bucket for s in data.samples)}),
               "lora": {"r": params.r, "alpha": alpha, "dropout": params.lora_dropout,
                        "target_modules": sorted(pipeline_targets(params, variant))},
               "dreambooth": params.dreambooth, "instance_prompt": params.instance_prompt,
               "prior_preservation": {"class_prompt": params.class_prompt, "class_images": len(prior.class_images),
                                      "weight": params.prior_loss_weight} if prior else None,
               "training_args": params.training_args.model_dump(), "device": device,
               "trainable_parameters": outcome.trainable_parameters, "steps": outcome.steps,
               "max_steps": outcome.max_steps, "resumed_from_step": outcome.resumed_from,
               "train_seconds": round(outcome.train_seconds, 3), "log_history": outcome.log_history}
        (ctx.output_dir / "training_log.json").write_text(json.dumps(log, indent=2))
        ctx.report("steps", outcome.steps)
        if losses:
            ctx.report("first_loss", losses[0])
            ctx.report("final_loss", losses[-1])
        import shutil

        shutil.rmtree(checkpoints, ignore_errors=True)  # finished: the result is in the cache now
        attributes = {**model.attributes, "model_variant": variant}
        if params.merge_lora:
            return ModelRef(kind="diffusers", path=ctx.output_dir, attributes={**attributes, "adapter_path": None,
                                                                               "base_model_path": None})
        return ModelRef(kind="diffusers", path=ctx.output_dir,
                        attributes={**attributes, "base_model_path": str(model.path), "adapter_path": "adapter"})


def pipeline_targets(params: SDLoRAParams, variant: str) -> list[str]:
    from modelmill.finetune.diffusion_training import FLUX_TARGETS, SD_TARGETS

    return params.target_modules or (FLUX_TARGETS if variant == "flux" else SD_TARGETS)


def _variant(model: ModelRef, params: SDLoRAParams) -> str:
    from modelmill.finetune.diffusion_training import VARIANTS, detect_variant

    requested = params.model_variant if params.model_variant != "auto" else \
        str(model.attributes.get("model_variant") or "auto")
    variant = detect_variant(model.path) if requested == "auto" else requested
    if variant is None:
        raise PassError(f"cannot tell the pipeline family of {model.path}: it has neither unet/config.json nor "
                        "transformer/config.json", fix="pass --model_variant sd, sdxl or flux",
                        where="model_variant")
    if variant not in VARIANTS:
        raise PassError(f"--model_variant {variant}: ModelMill trains LoRA for sd, sdxl and flux pipelines; {variant} "
                        "is not supported (Olive's SDLoRA pass does not train it either: it sends it down the UNet "
                        "path, which such a pipeline lacks)", fix="use an SD 1.x/2.x, SDXL or Flux pipeline, or "
                        "pass --model_variant sd / sdxl / flux if the folder was misdetected", where="model_variant")
    denoiser = "transformer" if variant == "flux" else "unet"
    if not (model.path / denoiser / "config.json").exists():
        raise PassError(f"--model_variant {variant} trains the pipeline's {denoiser}, but {model.path} has no "
                        f"{denoiser}/config.json", fix="pass the --model_variant that matches the pipeline (or auto)",
                        where="model_variant")
    return variant


def _images(params: SDLoRAParams, ctx: PassContext, default_base: int) -> tuple[Any, dict[str, Any]]:
    from modelmill.engine.data import _params, resolve_data_config
    from modelmill.finetune.diffusion_data import load_images

    resolved = resolve_data_config(params.train_data_config, ctx.data_configs) or {}
    load_cfg, pre_cfg = resolved.get("load_dataset_config"), resolved.get("pre_process_data_config")
    load, pre = _params(load_cfg), _params(pre_cfg)
    load_type = load_cfg.get("type") if isinstance(load_cfg, dict) else None
    pre_type = pre_cfg.get("type") if isinstance(pre_cfg, dict) else None
    data = load_images(load_type, load, pre_type, pre, ctx.cache_dir / "datasets", params.instance_prompt,
                       default_base)
    return data, {"load_dataset_config": {"type": load_type, **load},
                  "pre_process_data_config": {"type": pre_type, **pre} if pre_cfg else None}


def _prior(model: ModelRef, variant: str, params: SDLoRAParams, schedule: Any, device: str, ctx: PassContext) -> Any:
    """The class images: the class folder's, then generated ones (kept in the cache) up to num_class_images."""
    from modelmill.finetune import diffusion_training as training
    from modelmill.finetune.diffusion_data import folder_samples

    assert params.class_prompt is not None
    given = folder_samples(Path(params.class_data_dir).expanduser(), instance_prompt=params.class_prompt) \
        if params.class_data_dir and Path(params.class_data_dir).expanduser().is_dir() else []
    missing = params.num_class_images - len(given)
    if missing > 0:
        key = hashlib.sha256(json.dumps([_model_stamp(model.path), variant, params.class_prompt, device,
                                         schedule.seed], default=str).encode()).hexdigest()[:24]
        folder = ctx.cache_dir / "sd-lora-class-images" / key
        ctx.log(f"{len(given)} class images given, {params.num_class_images} wanted: generating {missing} with the "
                f"base pipeline into {folder}")
        training.generate_class_images(model.path, variant, params.class_prompt, missing, folder, device,
                                       schedule.seed, ctx.progress, ctx.cancel)
        given += folder_samples(folder, instance_prompt=params.class_prompt)[:missing]
    return training.PriorPreservation(params.class_prompt, given[:params.num_class_images], params.prior_loss_weight)


def _model_stamp(path: Path) -> list[Any]:
    return [(str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
            for f in sorted(path.rglob("*")) if f.is_file()]


def _checkpoint_key(model: ModelRef, params: SDLoRAParams, data: dict[str, Any], device: str) -> str:
    """Everything that shapes the training: a checkpoint is resumed only by the same training."""
    from modelmill.finetune.diffusion_data import data_stamp

    material = {"model": _model_stamp(model.path), "params": params.model_dump(mode="json", exclude={"merge_lora"}),
                "data": data, "files": data_stamp({**data["load_dataset_config"],
                                                   "class_data_dir": params.class_data_dir}), "device": device}
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:24]
