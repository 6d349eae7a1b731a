"""generate-model-package: merge output folders (one per target) into one package, in Olive's layout.

    OUTPUT/manifest.json                          name, version, components and their variants
    OUTPUT/configs/...                            files every variant shares (tokenizer, genai_config.json)
    OUTPUT/models/<component>/metadata.json       variant → execution provider and device
    OUTPUT/models/<component>/<variant>/...       each source's ONNX files (self-contained)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from modelmill.commands.common import add_telemetry_flag

SHARED_SUFFIXES = {".json", ".txt", ".model", ".jinja", ".tiktoken"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--source", action="append", required=True,
                        help="an output folder to include (repeat for each target)")
    parser.add_argument("-o", "--output_path", required=True, help="package folder to write")
    parser.add_argument("--model_name", default=None, help="package name (default: the first source's folder name)")
    parser.add_argument("--model_version", default="1.0", help="package version (default 1.0)")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package folder")
    add_telemetry_flag(parser)


def run(args: argparse.Namespace) -> int:
    import shutil
    import sys

    from modelmill.commands.common import refuse

    sources = [Path(s) for s in args.source]
    for source in sources:
        if not source.is_dir() or not any(source.glob("*.onnx")):
            refuse("--source", f"{source} is not an output folder with an ONNX model",
                   "pass folders written by auto-opt/optimize/capture-onnx-graph (each has *.onnx)")
    from modelmill.engine.output import check_output_target, place

    target = Path(args.output_path)
    # The runs' own output rules: --overwrite replaces a non-empty folder, but never a link, the working or home
    # folder, a source folder, or one that holds any of them.
    protected = [(source, "a source folder") for source in sources]
    check_output_target(target, args.overwrite, protected)
    name = args.model_name or sources[0].resolve().name
    tmp = target.with_name(f".{target.name}.tmp-package")
    if tmp.exists():
        shutil.rmtree(tmp)
    variants = [_copy_variant(source, tmp / "models" / name, index) for index, source in enumerate(sources)]
    _copy_shared(sources[0], tmp / "configs")
    (tmp / "models" / name / "metadata.json").write_text(json.dumps(
        {"name": name, "variants": {v["name"]: {k: v[k] for k in ("ep", "device")} for v in variants}}, indent=2))
    manifest = {"name": name, "version": args.model_version,
                "components": {name: {"variants": [v["name"] for v in variants]}},
                "sources": {v["name"]: v["source"] for v in variants}}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    place(tmp, target, args.overwrite, protected)  # whole package or nothing; checked again first
    print(f"wrote package {target}: {len(variants)} variant(s) of {name}", file=sys.stderr)
    return 0


def _copy_variant(source: Path, component_dir: Path, index: int) -> dict[str, Any]:
    import shutil

    from modelmill.output_guard import MANIFEST_NAME

    run_info = json.loads((source / MANIFEST_NAME).read_text()) if (source / MANIFEST_NAME).exists() else {}
    ep = str(run_info.get("execution_provider") or "CPUExecutionProvider")
    device = str(run_info.get("device") or "cpu")
    name = f"{ep.removesuffix('ExecutionProvider').lower()}-{device}"
    if (component_dir / name).exists():
        name = f"{name}-{index}"
    variant_dir = component_dir / name
    variant_dir.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix not in SHARED_SUFFIXES or item.name == "genai_config.json":
            shutil.copy2(item, variant_dir / item.name)  # model, external data, and its own genai_config
    return {"name": name, "ep": ep, "device": device, "source": str(source.resolve())}


def _copy_shared(source: Path, configs: Path) -> None:
    import shutil

    from modelmill.output_guard import MANIFEST_NAME

    configs.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix in SHARED_SUFFIXES and item.name != MANIFEST_NAME:
            shutil.copy2(item, configs / item.name)
