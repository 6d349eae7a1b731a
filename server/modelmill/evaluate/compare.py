"""`modelmill evaluate`: measure one model, or two side by side, and print a table or JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from modelmill.engine.model import ModelRef


def model_ref(value: str) -> ModelRef:
    """A ModelRef for a folder or file the user names (samples fetched, hub ids refused)."""
    from modelmill.errors import ModelMillError
    from modelmill.samples import resolve_model_path

    path = resolve_model_path(value)
    if path.is_file() and path.suffix == ".onnx":
        return ModelRef("onnx", path.parent, onnx_file=path.name)
    if (path / "genai_config.json").exists() or (path / "model.onnx").exists():
        return ModelRef("onnx", path)
    onnx_files = sorted(path.glob("*.onnx")) if path.is_dir() else []
    if onnx_files:
        return ModelRef("onnx", path, onnx_file=onnx_files[0].name)
    if (path / "config.json").exists():
        return ModelRef("hf", path)
    raise ModelMillError(f"{path} is not a model ModelMill can evaluate",
                         fix="pass an output folder, an .onnx file, or a Hugging Face folder")


def source_model(model: ModelRef) -> ModelRef | None:
    """The PyTorch model an output was made from, from its manifest (for similarity)."""
    manifest = model.path / "modelmill_run.json"
    if manifest.exists():
        source = json.loads(manifest.read_text()).get("input_model", {})
        if source.get("kind") == "hf" and Path(source.get("path", "")).exists():
            return ModelRef("hf", Path(source["path"]))
    return None


def choose_metrics(args: argparse.Namespace, model: ModelRef) -> list[dict[str, Any]]:
    """The metrics `--metrics` names, or the defaults for this kind of model."""
    from modelmill.errors import ModelMillError
    from modelmill.evaluate.presets import default_names, metrics_for

    if args.metrics:
        names = [n.strip() for n in args.metrics.split(",") if n.strip()]
    else:
        architectures = model.hf_config().get("architectures") or []
        names = list(default_names(model.kind, model.is_genai, any(a.endswith("ForCausalLM") for a in architectures)))
    try:
        return metrics_for(names)
    except ValueError as exc:
        raise ModelMillError(str(exc), fix="pass --metrics with known names") from exc


def run_evaluate(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from modelmill.evaluate import evaluate_model, write_reports
    from modelmill.render import format_value, stderr_console

    console = stderr_console()
    models = {args.model: model_ref(args.model)}
    if args.compare:
        models[args.compare] = model_ref(args.compare)
    reference = ModelRef("hf", model_ref(args.reference).path) if args.reference else None
    results = {}
    for label, model in models.items():
        metrics = choose_metrics(args, models[args.model])

        def emit(type_: str, **data: Any) -> None:
            console.print(f"  [dim]{label}[/]: {data['key']} = {format_value(data['value'], data.get('unit', ''))}")

        console.print(f"[bold]evaluating[/] {model.path}")
        results[label] = evaluate_model(model, metrics, emit=emit, reference=reference or source_model(model))
    if args.report:
        written = write_reports(results, Path(args.report))
        console.print(f"reports: {', '.join(str(p) for p in written.values())}")
    if args.json:
        payload = {label: result.to_json() for label, result in results.items()}
        print(json.dumps(payload if args.compare else payload[args.model], indent=2))
        return 0
    table = Table("metric", *models.keys(), *(["ratio"] if args.compare else []))
    first, *rest = results.values()
    for value in first.values:
        row = [f"{value.key} ({value.unit})" if value.unit else value.key, format_value(value.value)]
        if rest:
            other = rest[0].get(value.key)
            row.append(format_value(other))
            row.append(f"{other / value.value:.2f}x" if other and value.value else "")
        table.add_row(*row)
    Console(file=sys.stdout).print(table)
    return 0
