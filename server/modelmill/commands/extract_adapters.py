"""extract-adapters: save the LoRA adapter weights of a model (a PEFT adapter or a finetune output) to a file."""

from __future__ import annotations

import argparse

from modelmill.commands.adapter_files import FORMATS
from modelmill.commands.common import add_model_source_flags, add_telemetry_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", required=True,
                        help="local folder with LoRA adapters: a peft adapter folder, a model folder with one adapter "
                             "per subfolder (one file each, named after the folder), or a finetune output")
    parser.add_argument("-t", "--task", default=None, help="accepted for Olive compatibility (not needed here)")
    parser.add_argument("--trust_remote_code", action="store_true", help="accepted for Olive compatibility")
    add_model_source_flags(parser, adapter=False)
    parser.add_argument("-o", "--output_path", default="adapters",
                        help="folder for the weights: one file per adapter (default adapters)")
    parser.add_argument("-f", "--format", required=True, choices=FORMATS, help="file format to write")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="weight type")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing adapter files in the output folder (ModelMill only; without it an existing file is refused)")
    parser.add_argument("--cache_dir", default=None,
                        help="Hugging Face cache folder (accepted; ModelMill reads local folders only)")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5))
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    """Olive's extract-adapters: every adapter under -m (a folder holding adapter_config.json, or a model folder with
    one adapter per subfolder) → OUTPUT/<adapter name>.<format>, weights named as generate-adapter's model inputs."""
    import sys
    from pathlib import Path

    from modelmill.commands.driver import local_model
    from modelmill.commands.adapter_files import find_peft_adapters, lora_weights, save_weights
    from modelmill.commands.common import check_common, refuse

    check_common(args)
    if args.test not in (None, False):
        refuse("--test", "a randomly initialized test model has no trained adapter to extract",
               "drop --test and pass the adapter folder with -m")
    model_dir = local_model(args.model)
    config_dir = model_dir if (model_dir / "config.json").exists() else None
    skip = Path(args.cache_dir) if args.cache_dir else None
    adapters = find_peft_adapters(model_dir, "-m", skip)
    suffix = ".npz" if args.format == "numpy" else f".{args.format}"
    existing = [str(Path(args.output_path) / (name + suffix)) for name in adapters
                if (Path(args.output_path) / (name + suffix)).exists()]
    if existing and not args.overwrite:  # checked for all before writing any: no half-replaced set
        refuse("-o", f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}",
               "choose another --output_path, move those files away, or pass --overwrite to replace them")
    for name, adapter_dir in adapters.items():
        weights = lora_weights(adapter_dir, args.dtype, "-m", config_dir)
        target = save_weights(weights, str(Path(args.output_path) / name), args.format, overwrite=args.overwrite,
                              flag="-o")
        print(f"wrote the {name} adapter's {len(weights)} tensors to {target}", file=sys.stderr)
    return 0
