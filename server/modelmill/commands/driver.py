"""The one run path every command takes: resolve the model, validate, plan, check the provider, run with progress.

Heavy imports (pydantic, rich, the engine) stay inside the functions: commands import this module when they run,
never while the parser is built.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence


def step_printer() -> Callable[[str], None]:
    """Print a sample's fetch steps on stderr."""
    from modelmill.render import stderr_console

    console = stderr_console()
    return lambda message: console.print(f"[cyan]sample[/]: {message}")


def local_model(value: str) -> Path:
    """The local folder or file for -m: fetches a sample:NAME, refuses a hub id."""
    from modelmill.samples import resolve_model_path

    return resolve_model_path(value, step_printer())


def run_generated(config: dict[str, Any], args: argparse.Namespace, notes: Sequence[str] = ()) -> int:
    """Run a config a command built from its flags (saved next to the output with --save_config_file); ``notes``
    are printed with the plan (e.g. auto-opt's hints)."""
    from modelmill.config import parse_document

    document = parse_document(json.dumps(config, indent=2), f"<{args.command}>.json")
    if args.save_config_file:
        target = Path(config["output_dir"]).resolve().parent / f"{args.command}-config.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(document.text)
        print(f"saved the config to {target}", file=sys.stderr)
    return execute(document, args, {}, notes)


def execute(document: Any, args: argparse.Namespace, overrides: dict[str, Any], notes: Sequence[str] = ()) -> int:
    """Validate, plan, check the hardware, run with progress; the one path every run takes."""
    from dataclasses import replace

    from modelmill.config import Environment, format_report
    from modelmill.engine.prepare import prepare_run
    from modelmill.engine.runner import start_run
    from modelmill.engine.workflow import new_run_id
    from modelmill.pipes import EXIT_STATUS
    from modelmill.render import EventsFile, ProgressRenderer, stderr_console

    console = stderr_console()
    overwrite = bool(getattr(args, "overwrite", False))

    def report(warnings: list[Any]) -> None:
        if args.log_level <= 2:
            console.print(format_report(warnings, document.name), markup=False)

    # base_dir None: relative folders resolve against the working directory, as written
    prepared = prepare_run(document, overrides, None, env=replace(Environment.current(), overwrite_output=overwrite),
                           overwrite=overwrite, ray_address=getattr(args, "ray_address", None),
                           trust_remote_code=bool(getattr(args, "trust_remote_code", False)), on_warnings=report)
    plan, config = prepared.plan, prepared.config
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
    for note in notes:
        console.print(f"  {note}", markup=False)
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
    if outcome.output_dir and (_runs_in_genai(outcome.output_dir) or _is_openvino_llm(outcome.output_dir)):
        console.print(f"  try it: modelmill chat {outcome.output_dir} \"What is machine learning?\"")
    return 0


def _is_openvino_llm(folder: Path) -> bool:
    from modelmill.openvino_genai import is_openvino_llm

    return is_openvino_llm(folder)


def _runs_in_genai(folder: Path) -> bool:
    """True when ``folder``'s genai_config.json names a decoder file that is there (SplitModel's parts keep the
    config of the model they came from, not a model it runs)."""
    try:
        config = json.loads((folder / "genai_config.json").read_text())
        return (folder / config["model"]["decoder"]["filename"]).exists()
    except (OSError, ValueError, KeyError, TypeError):
        return False
