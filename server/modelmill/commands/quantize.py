"""quantize: Olive 0.13's quantize command. Hugging Face models: gptq (the Gptq pass, then ModelBuilder), rtn/kquant
in the ORT GenAI builder; ONNX models: rtn/hqq/kquant int4 block-wise, int8 dynamic or (with data) static. Builds
the auto-opt config and sets its quantization passes to --algorithm, --precision and --block_size."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from modelmill.commands import olive_compat
from modelmill.commands.common import OLIVE_PRECISIONS, add_model_flags, refuse

ALGORITHMS = ["rtn", "hqq", "kquant", "k_quant", "default", "awq", "gptq", "spinquant", "quarot", "lpbq", "seqmse",
              "adaround"]
# Olive's ImplName values; ort and olive both run ModelMill's own passes.
IMPLEMENTATIONS = ["ort", "olive", "bnb", "nvmo", "inc", "spinquant", "quarot", "awq", "autogptq", "aimet"]
GPTQ_ALGORITHMS = ("gptq", "quarot", "spinquant")  # Olive's Gptq pass lists all three (its supported_algorithms)
GPTQ_PRECISIONS = ("int4", "uint4", "int8", "uint8")

# Olive 0.13's passes ModelMill cannot run: (model kind, implementation or algorithm) → (pass, what it needs).
_AIMET = ("AimetQuantization", "Qualcomm's AIMET (aimet-onnx) and calibration data")
_OLIVE_ONLY_IMPL = {
    ("hf", "spinquant"): ("SpinQuant", "Olive's SpinQuant (trained rotations, CUDA)"),
    ("hf", "awq"): ("AutoAWQQuantizer", "the autoawq package (CUDA kernels)"),
    ("hf", "autogptq"): ("GptqQuantizer", "the auto-gptq/gptqmodel package"),
    ("onnx", "bnb"): ("OnnxBnb4Quantization", "onnxruntime's MatMulBnb4 (fp4/nf4) quantizer"),
    ("onnx", "nvmo"): ("NVModelOptQuantization", "NVIDIA's modelopt package and a CUDA GPU"),
    ("onnx", "inc"): ("IncDynamicQuantization", "Intel Neural Compressor (neural-compressor)"),
    ("onnx", "aimet"): _AIMET,
}
_OLIVE_ONLY_ALGORITHM = {
    ("hf", "awq"): ("AutoAWQQuantizer", "the autoawq package (CUDA kernels)"),
    ("onnx", "awq"): ("NVModelOptQuantization", "NVIDIA's modelopt package and a CUDA GPU"),
    ("onnx", "gptq"): ("IncDynamicQuantization", "Intel Neural Compressor (neural-compressor)"),
    ("onnx", "lpbq"): _AIMET, ("onnx", "seqmse"): _AIMET, ("onnx", "adaround"): _AIMET,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_flags(parser)
    parser.add_argument("--algorithm", default="rtn", choices=ALGORITHMS,
                        help="rtn, kquant (int4 or int8) and gptq (Hugging Face models), hqq (ONNX); quarot and "
                             "spinquant run Olive's Gptq pass as Olive does (--implementation quarot adds the "
                             "QuaRot rotation first); awq, lpbq, seqmse, adaround need Olive")
    parser.add_argument("--precision", default="int4", choices=OLIVE_PRECISIONS,
                        help="int4 (default), uint4, int8, uint8; int16/uint16 with calibration (static quantization)")
    parser.add_argument("--implementation", default="ort",
                        help="ort or olive (ModelMill's passes); quarot (with --algorithm quarot: QuaRot, Gptq, then "
                             "the builder); Olive's spinquant, awq, autogptq, bnb, nvmo, inc and aimet "
                             "implementations are refused with the pass they need")
    parser.add_argument("--block_size", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--provider", default=None)
    olive_compat.add_quantize(parser)


def run(args: argparse.Namespace) -> int:
    from modelmill.commands import common
    from modelmill.commands.driver import run_generated

    common.check_common(args)
    olive_compat.check_quantize(args)
    common.resolve_test_model(args)
    config = build_config(args)
    olive_compat.apply_quantize(args, config)
    return run_generated(config, args)


def check_algorithm(args: argparse.Namespace, kind: str) -> None:
    """Refuse Olive's implementations and algorithms whose pass ModelMill cannot run, naming the pass."""
    other = "onnx" if kind == "hf" else "hf"
    impl, algorithm = args.implementation, {"kquant": "k_quant"}.get(args.algorithm, args.algorithm)
    if impl not in IMPLEMENTATIONS:
        refuse("--implementation", f"unknown implementation '{impl}'",
               f"use --implementation ort or olive (ModelMill's passes); Olive's are {', '.join(IMPLEMENTATIONS)}")
    found = _OLIVE_ONLY_IMPL.get((kind, impl))
    if found:
        refuse("--implementation", f"--implementation {impl} runs Olive's {found[0]} pass, which needs {found[1]}; "
               "ModelMill cannot run it here", "use --implementation olive (ModelMill's rtn/gptq for Hugging Face "
               "models, rtn/hqq/kquant/int8 for ONNX models)")
    if (other, impl) in _OLIVE_ONLY_IMPL:
        refuse("--implementation", f"--implementation {impl} is Olive's {_OLIVE_ONLY_IMPL[other, impl][0]}, which "
               f"quantizes {'ONNX' if other == 'onnx' else 'Hugging Face'} models; -m is "
               f"{'an ONNX' if kind == 'onnx' else 'a Hugging Face'} model (Olive refuses this pairing too)",
               "drop --implementation (ModelMill's passes)")
    found = _OLIVE_ONLY_ALGORITHM.get((kind, algorithm))
    if found:
        fix = ("quantize the Hugging Face model with --algorithm gptq (ModelMill runs Olive's Gptq pass there), "
               "or use rtn, hqq or kquant on the ONNX model" if (kind, algorithm) == ("onnx", "gptq") else
               "use --algorithm gptq or rtn (Hugging Face models), or rtn, hqq or kquant (ONNX models)")
        refuse("--algorithm", f"--algorithm {args.algorithm} on {'an ONNX' if kind == 'onnx' else 'a Hugging Face'} "
               f"model needs Olive's {found[0]} pass, which needs {found[1]}; ModelMill cannot run it here", fix)
    if kind == "hf" and algorithm in ("lpbq", "seqmse", "adaround"):
        refuse("--algorithm", f"--algorithm {algorithm} is Olive's AimetQuantization, an ONNX pass that needs "
               f"{_AIMET[1]}; ModelMill cannot run it here", "use --algorithm gptq or rtn")
    if kind == "onnx" and algorithm in ("quarot", "spinquant"):
        refuse("--algorithm", f"--algorithm {algorithm} rotates a PyTorch model's weights (Olive's "
               f"{'QuaRot' if algorithm == 'quarot' else 'SpinQuant'} pass); -m is an ONNX model",
               "use rtn, hqq or kquant on the ONNX model")
    if kind == "hf" and algorithm in GPTQ_ALGORITHMS and args.precision not in GPTQ_PRECISIONS:
        refuse("--precision", f"Olive's Gptq pass quantizes to {', '.join(GPTQ_PRECISIONS)}, not {args.precision}",
               "use --precision int4 (or uint4, int8, uint8)")
    if kind == "hf" and impl == "quarot" and algorithm != "quarot":
        refuse("--algorithm", f"--implementation quarot runs Olive's QuaRot pass, which supports --algorithm quarot "
               f"only, not {args.algorithm} (Olive refuses this pairing too)", "add --algorithm quarot")
    if kind == "hf" and impl == "quarot":
        print("note: Olive's quantize writes only the rotated Hugging Face model here; ModelMill goes on to a "
              "deployable model: QuaRot, then the Gptq pass (GPTQ on the rotated weights, as the QuaRot paper does), "
              "then the ORT GenAI builder", file=sys.stderr)
    elif kind == "hf" and algorithm in ("quarot", "spinquant"):
        print(f"note: as in Olive, --algorithm {algorithm} with implementation {impl} runs the Gptq pass, GPTQ "
              "without a rotation; " + ("add --implementation quarot for the rotation (Olive's QuaRot pass)"
                                         if algorithm == "quarot" else "the rotation is Olive's SpinQuant pass "
                                         "(--implementation spinquant), which ModelMill cannot run"), file=sys.stderr)


def build_config(args: argparse.Namespace) -> dict[str, Any]:
    """auto-opt's config for the model, its quantization passes set to --algorithm, --precision and --block_size."""
    from modelmill.commands.driver import local_model
    from modelmill.engine import autoopt
    from modelmill.errors import ConfigError

    model_dir = local_model(args.model)
    kind, _ = autoopt._inspect(model_dir)
    check_algorithm(args, "onnx" if kind == "onnx" else "hf")
    precision = {"uint4": "int4", "uint8": "int8", "int16": "int8", "uint16": "int8"}.get(args.precision,
                                                                                          args.precision)
    request = autoopt.AutoOptRequest(model=args.model, output_path=args.output_path or "models/quantized",
                                     device=args.device, provider=args.provider, precision=precision,
                                     log_level=args.log_level)
    config = autoopt.build_config(request, model_dir)
    algorithm = {"kquant": "k_quant"}.get(args.algorithm, args.algorithm)
    symmetric = not args.precision.startswith("u")
    passes = config["passes"]
    for entry in passes.values():
        if entry["type"] == "ModelBuilder" and args.precision in ("int4", "uint4", "int8", "uint8"):
            if algorithm == "hqq":
                raise ConfigError("the ORT GenAI builder has no hqq algorithm for Hugging Face models",
                                  fix="use --algorithm rtn, kquant or gptq, or quantize an ONNX model with "
                                      "--algorithm hqq")
            if algorithm not in GPTQ_ALGORITHMS:
                entry["int4_algo_config"] = "default" if algorithm == "default" else algorithm
            entry["int4_block_size"] = args.block_size
            if not symmetric:
                entry["int4_is_symmetric"] = False
        if entry["type"] == "OnnxBlockWiseRtnQuantization":
            entry["type"] = {"hqq": "OnnxHqqQuantization", "k_quant": "OnnxKQuantQuantization"}.get(
                algorithm, "OnnxBlockWiseRtnQuantization")
            entry["block_size"] = args.block_size
            if not symmetric:
                entry["is_symmetric"] = False
        if entry["type"] == "OnnxDynamicQuantization":
            entry["precision"] = "int8" if args.precision in ("int16", "uint16") else args.precision
    if kind != "onnx" and algorithm in GPTQ_ALGORITHMS:
        _add_gptq(args, config, symmetric)
    if kind != "onnx" and args.implementation == "quarot":
        config["passes"] = {"quarot": {"type": "QuaRot"}, **config["passes"]}
    return config


def _add_gptq(args: argparse.Namespace, config: dict[str, Any], symmetric: bool) -> None:
    """Olive's Gptq pass (its quantize maps gptq/quarot/spinquant with implementation olive to it) before the builder,
    which turns its Olive-format checkpoint into MatMulNBits as it is."""
    passes = config["passes"]
    if not any(entry["type"] == "ModelBuilder" for entry in passes.values()):
        refuse("--algorithm", f"--algorithm {args.algorithm} writes a GPTQ checkpoint that only the ORT GenAI builder "
               "turns into ONNX, and this model is not one it builds (a causal LM such as Llama, Qwen, Phi, Mistral)",
               "use --algorithm rtn for this model")
    gptq: dict[str, Any] = {"type": "Gptq", "bits": 8 if args.precision.endswith("8") else 4,
                            "group_size": args.block_size, "sym": symmetric}
    if args.data_name:
        gptq["data_config"] = "default_data_config"  # its max_samples / max_seq_len set the calibration size
    config["passes"] = {"gptq": gptq, **passes}
