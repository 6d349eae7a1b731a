"""convert-adapters: a PEFT LoRA adapter → weights file (onnx_adapter, safetensors, npz, pt), optionally int4.

The weights carry the names of generate-adapter's model inputs, so an onnx_adapter file written here can be activated
on that model with onnxruntime-genai (any rank: the model's rank dimension is dynamic)."""

from __future__ import annotations

import argparse

from modelmill.commands.adapter_files import FORMATS
from modelmill.commands.common import add_telemetry_flag


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--adapter_path", required=True,
                        help="LoRA adapter folder saved by peft (or a `modelmill finetune` output)")
    parser.add_argument("--adapter_format", default="onnx_adapter", choices=FORMATS, help="file format to write")
    parser.add_argument("-o", "--output_path", required=True, help="file to write (the format's suffix is added)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"], help="weight type")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file (ModelMill only; without it an existing file is refused)")
    parser.add_argument("--quantize_int4", action="store_true",
                        help="store the weights as blockwise int4 (MatMulNBits layout: .quant.weight/.scale)")
    parser.add_argument("--int4_block_size", type=int, default=32, choices=[16, 32, 64, 128, 256])
    parser.add_argument("--int4_quantization_mode", default="symmetric", choices=["symmetric", "asymmetric"])
    parser.add_argument("--log_level", type=int, default=3, choices=range(5))
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from modelmill.commands.adapter_files import find_peft_adapter, int4_block_quantize, lora_weights, save_weights

    adapter_dir = find_peft_adapter(Path(args.adapter_path), "--adapter_path")
    weights = lora_weights(adapter_dir, args.dtype, "--adapter_path")
    if args.quantize_int4:
        symmetric = args.int4_quantization_mode == "symmetric"
        quantized = {}
        for name, value in weights.items():
            packed, scale, zero_point = int4_block_quantize(value, args.int4_block_size, symmetric)
            quantized[name.replace(".weight", ".quant.weight")] = packed
            quantized[name.replace(".weight", ".quant.scale")] = scale
            if not symmetric:  # a symmetric zero point is always 8 and not a node input
                quantized[name.replace(".weight", ".quant.zero_point")] = zero_point
        weights = quantized
    target = save_weights(weights, args.output_path, args.adapter_format, overwrite=args.overwrite,
                          inputs=tuple(adapter_dir.iterdir()))
    print(f"wrote {len(weights)} adapter tensors to {target}", file=sys.stderr)
    if args.quantize_int4:
        print("note: models built here (generate-adapter) take float LoRA weights; this int4 file is for a model "
              "whose LoRA MatMuls are MatMulNBits (.quant.weight/.quant.scale inputs), as Olive builds them",
              file=sys.stderr)
    return 0
