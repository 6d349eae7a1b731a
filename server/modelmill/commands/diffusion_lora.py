"""diffusion-lora: Olive's flags → a workflow config with one SDLoRA pass on a DiffusersModel, run like any other.

As Olive 0.13's ``olive diffusion-lora`` (olive/cli/diffusion_lora.py): the images are an ImageDataContainer data
config (``-d`` a folder of images with .txt captions, or ``--data_name`` a local data set), the pass trains the
denoiser's LoRA (passes/sd_lora.py). The data config is written inline in the pass (Olive accepts both forms) so
that the training images are part of the pass's cache key.
"""

from __future__ import annotations

import argparse
from typing import Any

from modelmill.commands.common import add_azure_flags, add_run_flags, add_telemetry_flag

TRAINING_FLAGS = ("max_train_steps", "learning_rate", "train_batch_size", "gradient_accumulation_steps",
                  "mixed_precision", "lr_scheduler", "lr_warmup_steps", "seed", "guidance_scale")
PASS_FLAGS = (("model_variant", "model_variant"), ("lora_r", "r"), ("alpha", "alpha"), ("lora_dropout", "lora_dropout"),
              ("dreambooth", "dreambooth"), ("instance_prompt", "instance_prompt"),
              ("with_prior_preservation", "with_prior_preservation"), ("class_prompt", "class_prompt"),
              ("class_data_dir", "class_data_dir"), ("num_class_images", "num_class_images"),
              ("prior_loss_weight", "prior_loss_weight"), ("merge_lora", "merge_lora"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", required=True,
                        help="local diffusers pipeline folder (model_index.json, unet/ or transformer/, vae/, ...)")
    add_run_flags(parser, "diffusion-lora-adapter")
    parser.add_argument("--model_variant", default="auto", choices=["auto", "sd", "sdxl", "sd3", "flux", "sana"],
                        help="pipeline family (auto: read from the folder); ModelMill trains sd, sdxl and flux")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"],
                        help="where to train (auto: the GPU when torch sees one, else the CPU)")
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("-r", "--lora_r", type=int, default=16, help="adapter rank (SD: 4-16, Flux: 16-64)")
    lora.add_argument("--alpha", type=float, default=None, help="adapter scale: the update is times alpha/r "
                                                                 "(default: the rank)")
    lora.add_argument("--lora_dropout", type=float, default=0.0)
    lora.add_argument("--target_modules", default=None,
                      help="comma-separated denoiser module names (default: the attention projections)")
    db = parser.add_argument_group("DreamBooth")
    db.add_argument("--dreambooth", action="store_true", help="train a DreamBooth subject (needs --instance_prompt)")
    db.add_argument("--instance_prompt", default=None, help="prompt naming the subject, e.g. 'a photo of sks dog'")
    db.add_argument("--with_prior_preservation", action="store_true",
                    help="also train on class images (needs --dreambooth and --class_prompt)")
    db.add_argument("--class_prompt", default=None, help="prompt of the class images, e.g. 'a photo of a dog'")
    db.add_argument("--class_data_dir", default=None,
                    help="folder of class images; missing ones are generated with the base pipeline into the cache")
    db.add_argument("--num_class_images", type=int, default=200)
    db.add_argument("--prior_loss_weight", type=float, default=1.0)
    data = parser.add_argument_group("data")
    data.add_argument("-d", "--data_dir", default=None,
                      help="local folder of training images, each with an optional caption in a .txt file of the "
                           "same name")
    data.add_argument("--data_name", default=None,
                      help="a local data set with an image column: a datasets.save_to_disk folder or Parquet/JSON "
                           "files (ModelMill does not download hub data sets)")
    data.add_argument("--data_split", default="train")
    data.add_argument("--image_column", default="image")
    data.add_argument("--caption_column", default=None)
    data.add_argument("--base_resolution", type=int, default=None,
                      help="bucket base resolution (default: 512 for SD, 1024 for SDXL and Flux)")
    train = parser.add_argument_group("training")
    train.add_argument("--max_train_steps", type=int, default=1000)
    train.add_argument("--learning_rate", type=float, default=1e-4)
    train.add_argument("--train_batch_size", type=int, default=1)
    train.add_argument("--gradient_accumulation_steps", type=int, default=4)
    train.add_argument("--mixed_precision", default="bf16", choices=["no", "fp16", "bf16"],
                       help="dtype of the frozen weights on the GPU (the CPU trains in float32)")
    train.add_argument("--lr_scheduler", default="constant", choices=[
        "constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"])
    train.add_argument("--lr_warmup_steps", type=int, default=0)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--guidance_scale", type=float, default=3.5, help="guidance for flux-style models")
    parser.add_argument("--merge_lora", action="store_true",
                        help="also write the pipeline with the LoRA merged into its denoiser")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def build_config(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """The workflow config `diffusion-lora` runs (what --save_config_file writes)."""
    from modelmill.commands.common import refuse
    from modelmill.paths import default_cache_dir

    if args.data_dir:
        load: dict[str, Any] = {"type": "image_folder_dataset", "params": {"data_dir": _absolute(args.data_dir)}}
    elif args.data_name:
        params = {"data_name": _absolute(args.data_name), "split": args.data_split, "image_column": args.image_column}
        if args.caption_column:
            params["caption_column"] = args.caption_column
        load = {"type": "huggingface_dataset", "params": params}
    else:
        refuse("--data_dir", "diffusion-lora needs training images", "pass -d / --data_dir FOLDER (images with .txt "
               "captions beside them) or --data_name LOCAL_DATASET")
    data: dict[str, Any] = {"name": "train_data", "type": "ImageDataContainer", "load_dataset_config": load}
    base = args.base_resolution
    if base is None and args.model_variant in ("sd", "sdxl", "flux"):
        base = 512 if args.model_variant == "sd" else 1024  # Olive's choice; auto: the pass reads the pipeline's
    if base is not None:
        data["pre_process_data_config"] = {"type": "image_lora_preprocess", "params": {"base_resolution": base}}
    sd_lora: dict[str, Any] = {"type": "SDLoRA", "train_data_config": data}
    for flag, key in PASS_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            sd_lora[key] = _absolute(value) if flag == "class_data_dir" else value
    if args.target_modules:
        sd_lora["target_modules"] = [name.strip() for name in args.target_modules.split(",") if name.strip()]
    sd_lora["training_args"] = {flag: getattr(args, flag) for flag in TRAINING_FLAGS if getattr(args, flag) is not None}
    return {
        "input_model": {"type": "DiffusersModel", "model_path": args.model},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [{
            "device": device, "execution_providers": ["CUDAExecutionProvider" if device == "gpu"
                                                      else "CPUExecutionProvider"]}]}},
        "passes": {"sd_lora": sd_lora},
        "host": "local_system",
        "target": "local_system",
        "output_dir": args.output_path,
        "cache_dir": str(default_cache_dir()),
        "log_severity_level": args.log_level,
    }


def _absolute(path: str) -> str:
    """A local path made absolute: passes run in a scratch folder of their own, not in the working folder."""
    from pathlib import Path

    local = Path(path).expanduser()
    return str(local.resolve()) if local.exists() else path


def resolve_device(requested: str) -> str:
    """auto: the GPU when torch sees a CUDA device (torch is imported only then)."""
    if requested != "auto":
        return requested
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return "cpu"
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from modelmill.commands.common import refuse, refuse_azure
    from modelmill.commands.driver import local_model, run_generated

    refuse_azure(args)
    if args.model_variant in ("sd3", "sana"):
        refuse("--model_variant", f"--model_variant {args.model_variant}: ModelMill trains LoRA for sd, sdxl and "
               f"flux pipelines; {args.model_variant} is not supported (Olive's SDLoRA pass does not train it "
               "either)", "use an SD 1.x/2.x, SDXL or Flux pipeline (--model_variant sd / sdxl / flux / auto)")
    if not args.data_dir and not args.data_name:
        refuse("--data_dir", "diffusion-lora needs training images", "pass -d / --data_dir FOLDER (images with .txt "
               "captions beside them) or --data_name LOCAL_DATASET")
    local_model(args.model)  # refuse a hub id before anything else
    missing = [name for name in ("diffusers", "peft") if importlib.util.find_spec(name) is None]
    if missing:
        refuse("diffusion-lora", f"diffusion-lora needs {' and '.join(missing)}, which "
               f"{'is' if len(missing) == 1 else 'are'} not installed", "pip install 'modelmill[diffusion]'")
    config = build_config(args, resolve_device(args.device))
    return run_generated(config, args)
