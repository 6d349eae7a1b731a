"""generate-cost-model: the per-module cost CSV (module,num_params,num_bytes,num_flops) CaptureSplitInfo reads."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from modelmill.commands.common import add_telemetry_flag

BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "fp8": 1, "int32": 4, "uint32": 4, "int16": 2, "uint16": 2, "int8": 1,
                    "uint8": 1, "int4": 0.5, "uint4": 0.5, "nf4": 0.5, "fp4": 0.5}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model_name_or_path", dest="model", required=True,
                        help="local Hugging Face model folder")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    parser.add_argument("--test", nargs="?", const=True, default=None, metavar="DIR",
                        help="use a random 2-layer copy of the architecture (DIR keeps it for reuse)")
    parser.add_argument("-o", "--output_path", default="cost-model.csv", help="CSV file to write (.csv is added)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output file (ModelMill only; without it an existing file is refused)")
    parser.add_argument("-p", "--weight_precision", default="fp16", choices=list(BYTES_PER_WEIGHT),
                        help="precision the weights will have; sets num_bytes")
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from modelmill.commands.driver import local_model
    from modelmill.commands.common import resolve_test_model
    from modelmill.engine.output import write_file_output

    resolve_test_model(args)
    model_dir = local_model(args.model)
    costs = module_costs(model_dir, args.weight_precision, args.trust_remote_code)
    output = args.output_path if args.output_path.endswith(".csv") else args.output_path + ".csv"
    target = Path(output)
    lines = ["module,num_params,num_bytes,num_flops"]
    lines += [f"{name},{params},{nbytes},{flops}" for name, (params, nbytes, flops) in costs.items()]
    write_file_output(target, lambda tmp: tmp.write_text("\n".join(lines) + "\n"), overwrite=args.overwrite)
    total = sum(cost[1] for cost in costs.values())
    print(f"wrote {target}: {len(costs)} modules, {total:g} bytes of {args.weight_precision} weights", file=sys.stderr)
    return 0


def module_costs(model_dir: Path, precision: str, trust_remote_code: bool) -> dict[str, tuple[int, Any, int]]:
    """Leaf module → (parameters, bytes at ``precision``, flops per token), estimated as Olive does."""
    import torch
    import transformers

    from modelmill.errors import ConfigError

    if not (model_dir / "config.json").exists():
        raise ConfigError(f"{model_dir} is not a Hugging Face model folder (no config.json)",
                          fix="pass -m with a folder saved by save_pretrained", where="-m")
    config = transformers.AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    with torch.device("meta"):  # shapes only: no weights are read
        model = transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code) \
            if any(a.endswith("ForCausalLM") for a in (config.architectures or [])) \
            else transformers.AutoModel.from_config(config, trust_remote_code=trust_remote_code)
    costs: dict[str, tuple[int, Any, int]] = {}
    hidden = 0
    for name, module in model.named_modules():
        if module._modules:  # noqa: SLF001 - leaves only, as Olive counts them
            continue
        params = sum(p.numel() for p in module.parameters())
        if isinstance(module, torch.nn.Linear):
            hidden, flops = module.out_features, 2 * params
        elif isinstance(module, torch.nn.Embedding):
            hidden, flops = module.embedding_dim, 1
        elif isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm"):
            flops = 4 * hidden
        elif isinstance(module, torch.nn.SiLU):
            flops = 6 * hidden
        else:
            flops = 0
        nbytes = params * BYTES_PER_WEIGHT[precision]
        costs[name] = (params, int(nbytes) if float(nbytes).is_integer() else nbytes, flops)
    return costs
