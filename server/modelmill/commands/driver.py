"""The one run path every command takes: resolve the model, validate, plan, check the provider, run with progress.

Heavy imports (pydantic, rich, the engine) stay inside the functions: commands import this module when they run,
never while the parser is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable


def step_printer() -> Callable[[str], None]:
    """Print a sample's fetch steps on stderr."""
    from modelmill.render import stderr_console

    console = stderr_console()
    return lambda message: console.print(f"[cyan]sample[/]: {message}")


def local_model(value: str) -> Path:
    """The local folder or file for -m: fetches a sample:NAME, refuses a hub id."""
    from modelmill.samples import resolve_model_path

    return resolve_model_path(value, step_printer())


def run_generated(config: dict[str, Any], args: argparse.Namespace) -> int:
    """Run a config a command built from its flags (saved next to the output with --save_config_file)."""
    from modelmill.config import parse_document

    document = parse_document(json.dumps(config, indent=2), f"<{args.command}>.json")
    if args.save_config_file:
        target = Path(config["output_dir"]).resolve().parent / f"{args.command}-config.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document.text)
        print(f"saved the config to {target}", file=sys.stderr)
    return execute(document, args, {})


def execute(document: Any, args: argparse.Namespace, overrides: dict[str, Any]) -> int:
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
        check_provider(plan.accelerator.execution_provider, plan.accelerator.device)
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
                    handle.wait(0.2)  # short waits: Ctrl-C and a closed stdout are noticed between them
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


def check_provider(provider: str, device: str) -> None:
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
