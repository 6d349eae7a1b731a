"""diffusion-lora: Olive's flags, accepted; training diffusion LoRAs is not in this build."""

from __future__ import annotations

import argparse

from modelmill.commands.common import add_azure_flags, add_run_flags, add_telemetry_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", required=True,
                        help="local diffusers pipeline folder")
    add_run_flags(parser, "diffusion-lora-adapter")
    parser.add_argument("--model_variant", default="auto", choices=["auto", "sd", "sdxl", "sd3", "flux", "sana"],
                        help="pipeline family (auto: read from the folder)")
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("-r", "--lora_r", type=int, default=16, help="adapter rank")
    lora.add_argument("--alpha", type=float, default=None, help="adapter scale (default: the rank)")
    lora.add_argument("--lora_dropout", type=float, default=0.0)
    lora.add_argument("--target_modules", default=None, help="comma-separated module names")
    db = parser.add_argument_group("DreamBooth")
    db.add_argument("--dreambooth", action="store_true", help="train a DreamBooth subject")
    db.add_argument("--instance_prompt", default=None, help="prompt naming the subject, e.g. 'a photo of sks dog'")
    db.add_argument("--with_prior_preservation", action="store_true", help="also train on class images")
    db.add_argument("--class_prompt", default=None)
    db.add_argument("--class_data_dir", default=None)
    db.add_argument("--num_class_images", type=int, default=200)
    db.add_argument("--prior_loss_weight", type=float, default=1.0)
    data = parser.add_argument_group("data")
    data.add_argument("-d", "--data_dir", default=None, help="local folder of images (and captions)")
    data.add_argument("--data_name", default=None, help="dataset name (a local datasets folder here)")
    data.add_argument("--data_split", default="train")
    data.add_argument("--image_column", default="image")
    data.add_argument("--caption_column", default=None)
    data.add_argument("--base_resolution", type=int, default=None)
    train = parser.add_argument_group("training")
    train.add_argument("--max_train_steps", type=int, default=1000)
    train.add_argument("--learning_rate", type=float, default=1e-4)
    train.add_argument("--train_batch_size", type=int, default=1)
    train.add_argument("--gradient_accumulation_steps", type=int, default=4)
    train.add_argument("--mixed_precision", default="bf16", choices=["no", "fp16", "bf16"])
    train.add_argument("--lr_scheduler", default="constant", choices=[
        "constant", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant_with_warmup"])
    train.add_argument("--lr_warmup_steps", type=int, default=0)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--guidance_scale", type=float, default=3.5, help="guidance for flux-style models")
    train.add_argument("--merge_lora", action="store_true", help="also write the pipeline with the LoRA merged in")
    add_azure_flags(parser)
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands.common import refuse_azure
    from modelmill.errors import ModelMillError

    refuse_azure(args)
    raise ModelMillError("diffusion-lora is not available in this build: LoRA training for diffusion models needs "
                         "diffusers, peft and accelerate, and ModelMill has no diffusion training pass yet",
                         fix="train with `olive diffusion-lora` (olive-ai with diffusers installed); ModelMill "
                             "fine-tunes LLMs with `modelmill finetune`")
