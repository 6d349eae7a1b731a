"""generate-model-package: merge output folders (one per target) into one ORT model package, as Olive 0.13 writes it.

Olive's packager (olive/cli/model_package.py) follows the ORT model-package proposal and is driven by each source's
genai_config.json: every role of its ``model`` block with a ``filename`` or a ``pipeline`` (decoder; vision,
embedding and decoder for a VLM) becomes a component, every source a variant of each of its components::

    OUTPUT.ortpackage/                       (the suffix is added when -o lacks it)
        manifest.json                        schema_version, package_name/version, components, configs_dir, producer
        configs/                             the shared files of the source with the most roles: tokenizer files,
                                             genai_config.json without its per-variant fields, each role given its
                                             ``component``
        models/<role>/metadata.json          schema_version, component_name,
                                             variants: {name: {ep, compatibility_string}}
        models/<role>/<variant>/             the role's ONNX file(s), their external data and same-stem sidecars,
                                             genai_config_overlay.json (RFC 7386 merge patch: filename,
                                             session_options, pipeline; context_length, token ids and type on the
                                             primary role)

A variant is named after its source folder; its execution provider comes from the role's
``session_options.provider_options`` (the first provider other than CPU), its compatibility string from the ONNX
file's ``ep_compatibility_info.<EP>`` metadata. ModelMill also packages an ONNX output without genai_config.json
(Olive refuses one): one component ``model`` with every top-level .onnx file, the provider from the folder's run
manifest. The package is built under a temporary name and renamed into place whole; the run engine's output rules
apply (a non-empty folder needs --overwrite; links, sources and the working folder are never replaced).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from modelmill.commands.common import add_telemetry_flag

PACKAGE_SUFFIX = ".ortpackage"
MODEL_SUFFIXES = {".onnx", ".bin", ".data", ".xml"}  # files that belong beside the ONNX model, not in configs/
CONFIGS_DIR, MODELS_DIR = "configs", "models"
MANIFEST_SCHEMA_VERSION = METADATA_SCHEMA_VERSION = 1
PLAIN_COMPONENT = "model"  # the component of a source without genai_config.json
# Model-level genai_config fields that differ between variants: out of the base config, into the primary role's overlay.
VARIANT_LEVEL_MODEL_KEYS = ("context_length", "pad_token_id", "eos_token_id", "bos_token_id", "type")
EP_TO_GENAI = {
    "CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "DML",
    "WebGpuExecutionProvider": "WebGPU", "JsExecutionProvider": "JS", "QNNExecutionProvider": "qnn",
    "OpenVINOExecutionProvider": "OpenVINO", "ROCMExecutionProvider": "rocm", "TensorrtExecutionProvider": "tensorrt",
    "NvTensorRTRTXExecutionProvider": "NvTensorRtRtx", "XnnpackExecutionProvider": "XNNPACK",
    "WebNNExecutionProvider": "WEBNN", "AzureExecutionProvider": "AZURE", "VitisAIExecutionProvider": "VitisAI",
    "CoreMLExecutionProvider": "CoreML", "MIGraphXExecutionProvider": "MIGraphX", "SNPEExecutionProvider": "SNPE",
}
GENAI_TO_EP = {alias.lower(): ep for ep, alias in EP_TO_GENAI.items()}
_NAME = re.compile(r"^[A-Za-z0-9._-][A-Za-z0-9._\- ]*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--source", action="append", required=True,
                        help="an output folder to include, one variant per folder (repeat for each target); each "
                             "holds genai_config.json and its ONNX files, or ONNX files and ModelMill's run manifest")
    parser.add_argument("-o", "--output_path", required=True,
                        help=f"package folder to write ({PACKAGE_SUFFIX} is added when missing)")
    parser.add_argument("--model_name", default=None,
                        help="package name, recorded in the manifest (default: the package folder's name)")
    parser.add_argument("--model_version", default="1.0", help="package version (default 1.0)")
    parser.add_argument("--log_level", type=int, default=3, choices=range(5))
    parser.add_argument("--overwrite", action="store_true", help="replace an existing package folder")
    add_telemetry_flag(parser)


@dataclass
class Variant:
    """One variant of one component: the ONNX files of one source's role."""

    component: str
    name: str
    onnx_files: list[Path]
    ep: str
    role: str
    source_genai: dict[str, Any] | None = None
    compatibility_string: str | None = None
    rel_paths: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    import sys
    import uuid

    from modelmill.commands.common import refuse
    from modelmill.engine.output import check_output_target, place, temp_sibling

    sources = _parse_sources(args.source)
    target = Path(args.output_path)
    if target.suffix != PACKAGE_SUFFIX:
        target = target.with_name(target.name + PACKAGE_SUFFIX)
    # The runs' own output rules: --overwrite replaces a non-empty folder, but never a link, the working or home
    # folder, a source folder, or one that holds any of them.
    protected = [(source, "a source folder") for _, source, _ in sources]
    check_output_target(target, args.overwrite, protected)
    variants = [variant for name, source, genai in sources for variant in _variants(name, source, genai)]
    components: dict[str, list[Variant]] = {}
    for variant in variants:
        for kind, value in (("component", variant.component), ("variant", variant.name)):
            if not _NAME.match(value) or value in (".", ".."):
                refuse("--source", f"invalid {kind} name {value!r}: only letters, digits, dot, underscore, hyphen "
                       "and space are allowed", "rename the source folder (variants are named after it)")
        components.setdefault(variant.component, []).append(variant)
    name = args.model_name or target.name.removesuffix(PACKAGE_SUFFIX)
    tmp = temp_sibling(target, uuid.uuid4().hex[:8])
    try:
        tmp.mkdir()
        for component, members in components.items():
            _write_component(tmp, component, members)
        role_to_component = {v.role: v.component for v in variants}
        _write_configs(tmp, sources, role_to_component)
        producer: dict[str, Any] = {"tool": "modelmill", "tool_version": _version(), "model_name": name,
                                    "model_version": args.model_version}
        task = _task(sources)
        if task:
            producer["task"] = task
        _write_json(tmp / "manifest.json", {"schema_version": MANIFEST_SCHEMA_VERSION, "package_name": name,
                                            "package_version": args.model_version, "components": list(components),
                                            "configs_dir": CONFIGS_DIR, "producer": producer})
        place(tmp, target, args.overwrite, protected)  # whole package or nothing; checked again first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"Model package generated at {target}: {len(components)} component(s) "
          f"({', '.join(components)}), {len(sources)} variant(s)", file=sys.stderr)
    return 0


def _version() -> str:
    from modelmill import __version__

    return __version__


# ------------------------------------------------------------------ sources


def _parse_sources(values: list[str]) -> list[tuple[str, Path, dict[str, Any] | None]]:
    """(variant name, folder, parsed genai_config.json or None) per --source."""
    from modelmill.commands.common import refuse

    sources, seen = [], set()
    for value in values:
        path = Path(value)
        if not path.is_dir():
            refuse("--source", f"source {path} does not exist or is not a folder", "pass output folders written by "
                   "auto-opt / optimize / capture-onnx-graph / run")
        genai = None
        if (path / "genai_config.json").is_file():
            try:
                genai = json.loads((path / "genai_config.json").read_text(encoding="utf-8"))
            except ValueError as exc:
                refuse("--source", f"{path}/genai_config.json is not valid JSON: {exc}", "fix or rebuild the source")
            if not isinstance(genai, dict) or not isinstance(genai.get("model"), dict):
                refuse("--source", f"{path}/genai_config.json has no model block", "fix or rebuild the source")
        elif not any(path.glob("*.onnx")):
            refuse("--source", f"{path} has neither genai_config.json nor an ONNX model",
                   "pass folders written by auto-opt/optimize/capture-onnx-graph (each has *.onnx)")
        name = path.resolve().name
        if name in seen:
            refuse("--source", f"two sources share the folder name {name!r}; variants are named after their folder",
                   "rename or copy one of them so that every source folder has its own name")
        seen.add(name)
        sources.append((name, path, genai))
    return sources


def _variants(name: str, source: Path, genai: dict[str, Any] | None) -> list[Variant]:
    if genai is None:
        files = sorted(source.glob("*.onnx"))
        ep = _manifest_provider(source)
        return [Variant(PLAIN_COMPONENT, name, files, ep, PLAIN_COMPONENT, None, _compatibility(files[0], ep),
                        [f.name for f in files])]
    variants = []
    for role, files in _artifacts_per_role(source, genai).items():
        ep = _role_provider(genai, role)
        variants.append(Variant(role, name, files, ep, role, genai, _compatibility(files[0], ep),
                                [f.name for f in files]))
    return variants


def _manifest_provider(source: Path) -> str:
    from modelmill.output_guard import MANIFEST_NAME

    try:
        return str(json.loads((source / MANIFEST_NAME).read_text()).get("execution_provider")
                   or "CPUExecutionProvider")
    except (OSError, ValueError, AttributeError):
        return "CPUExecutionProvider"


def is_safe_relative(location: Any) -> bool:
    """A relative path that stays below its folder on POSIX and Windows alike (no root, drive or '..')."""
    if not isinstance(location, str) or not location:
        return False
    normalized = location.replace("\\", "/")
    posix, windows = PurePosixPath(normalized), PureWindowsPath(normalized)
    if normalized.startswith("/") or posix.is_absolute() or windows.is_absolute():
        return False
    if not posix.parts or any(part in ("..", "") for part in posix.parts):
        return False
    return all(not (len(part) >= 2 and part[1] == ":") for part in windows.parts)


def _role_files(role_body: dict[str, Any]) -> list[str]:
    """A role's ONNX files: its pipeline stages' when it has a pipeline, else its filename."""
    pipeline = role_body.get("pipeline")
    if isinstance(pipeline, list) and pipeline:
        return [body["filename"] for stage in pipeline if isinstance(stage, dict) for body in stage.values()
                if isinstance(body, dict) and isinstance(body.get("filename"), str) and body["filename"]]
    filename = role_body.get("filename")
    return [filename] if isinstance(filename, str) and filename else []


def _artifacts_per_role(source: Path, genai: dict[str, Any]) -> dict[str, list[Path]]:
    from modelmill.commands.common import refuse

    found: dict[str, list[Path]] = {}
    for role, body in genai["model"].items():
        if not isinstance(body, dict):
            continue
        files = []
        for filename in _role_files(body):
            if not is_safe_relative(filename):
                refuse("--source", f"{source}/genai_config.json: role {role!r} names {filename!r}, which is not a "
                       "safe relative path (absolute paths and '..' are refused)", "fix the source's genai_config.json")
            if not (source / filename).is_file():
                refuse("--source", f"{source}/genai_config.json: role {role!r} names {filename}, which is missing",
                       "rebuild the source, or fix its genai_config.json")
            files.append(source / filename)
        if files:
            found[role] = files
    if not found:
        refuse("--source", f"{source}/genai_config.json has no role with a filename or pipeline",
               "rebuild the source (its genai_config.json should name the ONNX file of model.decoder)")
    return found


def _role_provider(genai: dict[str, Any], role: str) -> str:
    """The role's first provider other than CPU in its session_options (or its pipeline stages'); else CPU."""
    body = genai["model"].get(role) or {}
    blocks = [body.get("session_options")] + [stage_body.get("session_options")
                                               for stage in body.get("pipeline") or [] if isinstance(stage, dict)
                                               for stage_body in stage.values() if isinstance(stage_body, dict)]
    for block in blocks:
        entries = block.get("provider_options") if isinstance(block, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            for alias in entry if isinstance(entry, dict) else []:
                ep = GENAI_TO_EP.get(str(alias).lower())
                if ep and ep != "CPUExecutionProvider":
                    return ep
    return "CPUExecutionProvider"


def _compatibility(onnx_file: Path, ep: str) -> str | None:
    """The ONNX file's ``ep_compatibility_info.<EP>`` metadata (the only one when it names another EP)."""
    import onnx

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception:  # noqa: BLE001 - an unreadable file gets no compatibility string, as in Olive
        return None
    prefix = "ep_compatibility_info."
    found = {p.key[len(prefix):]: p.value for p in model.metadata_props if p.key.startswith(prefix)}
    value = found.get(ep) if ep in found else (next(iter(found.values())) if len(found) == 1 else None)
    return value.strip() or None if isinstance(value, str) else None


def _task(sources: list[tuple[str, Path, dict[str, Any] | None]]) -> str:
    for _, _, genai in sources:
        roles = {k for k, v in ((genai or {}).get("model") or {}).items() if isinstance(v, dict)}
        if {"encoder", "decoder"} <= roles:
            return "text2text_generation"
        if "decoder" in roles:
            return "text_generation"
    return ""


# ------------------------------------------------------------------ writing


def _copy(src: Path, dst: Path) -> None:
    """Copy, refusing to replace a different file already at ``dst`` (an identical one is kept)."""
    from modelmill.errors import ModelMillError

    if dst.exists():
        from modelmill.engine.output import file_digest

        if dst.is_file() and file_digest(src) == file_digest(dst):
            return
        raise ModelMillError(f"two files of the package land on {dst.name} with different content ({src})",
                             fix="rename one of the sources' files so that each variant's files have their own names")
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)


def external_data(onnx_file: Path) -> list[str]:
    """The safe relative ``location`` of every external-data file the ONNX model references."""
    import onnx

    try:
        model = onnx.load(str(onnx_file), load_external_data=False)
    except Exception:  # noqa: BLE001
        return []
    locations: list[str] = []
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        for entry in tensor.external_data:
            if entry.key == "location" and is_safe_relative(entry.value) and entry.value not in locations:
                locations.append(entry.value)
    return locations


def _write_component(root: Path, component: str, variants: list[Variant]) -> None:
    folder = root / MODELS_DIR / component
    for variant in variants:
        variant_dir = folder / variant.name
        variant_dir.mkdir(parents=True)
        stems: dict[Path, set[str]] = {}
        for onnx_file, rel in zip(variant.onnx_files, variant.rel_paths):
            dst = variant_dir / rel
            _copy(onnx_file, dst)
            src_dir = onnx_file.parent.resolve()
            stems.setdefault(src_dir, set()).add(onnx_file.stem)
            for location in external_data(onnx_file):
                blob = (onnx_file.parent / location).resolve()
                if blob.is_relative_to(src_dir) and blob.is_file():
                    _copy(blob, dst.parent / location)
        # Sidecars that the graph does not reference (an EPContext model's .bin, OpenVINO's .xml/.bin): same stem.
        for src_dir, names in stems.items():
            for entry in sorted(src_dir.iterdir()):
                if entry.is_file() and entry.suffix in MODEL_SUFFIXES and any(
                        entry.name == stem or entry.name.startswith((f"{stem}.", f"{stem}_")) for stem in names):
                    _copy(entry, variant_dir / entry.name)
        _write_json(variant_dir / "genai_config_overlay.json", overlay(variant))
    entries: dict[str, Any] = {}
    for variant in variants:
        entry: dict[str, Any] = {"ep": variant.ep}
        if variant.compatibility_string:
            entry["compatibility_string"] = variant.compatibility_string
        entries[variant.name] = entry
    _write_json(folder / "metadata.json", {"schema_version": METADATA_SCHEMA_VERSION, "component_name": component,
                                           "variants": entries})


def overlay(variant: Variant) -> dict[str, Any]:
    """The variant's genai_config_overlay.json: the per-variant fields the base config lost."""
    model = (variant.source_genai or {}).get("model")
    patch: dict[str, Any] = {}
    if isinstance(model, dict):
        body = model.get(variant.role)
        if isinstance(body, dict):
            role_patch = _role_patch(body, variant.rel_paths)
            if role_patch:
                patch[variant.role] = role_patch
        if variant.role == _primary_role(model):
            patch.update({key: json.loads(json.dumps(model[key])) for key in VARIANT_LEVEL_MODEL_KEYS
                          if key in model})
    else:  # no genai_config: the file and the provider, as Olive's writer makes them from inference settings
        alias = EP_TO_GENAI.get(variant.ep, variant.ep.removesuffix("ExecutionProvider").lower())
        patch[variant.role] = {"filename": variant.rel_paths[0], "session_options": {
            "provider_options": [] if alias == "CPU" else [{alias: {}}]}}
    return {"model": patch}


def _role_patch(body: dict[str, Any], rel_paths: list[str]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    pipeline = body.get("pipeline")
    if isinstance(pipeline, list) and pipeline:
        stages, index = [], 0
        for stage in pipeline:
            copy = json.loads(json.dumps(stage))
            if isinstance(copy, dict):
                for stage_body in copy.values():
                    if isinstance(stage_body, dict) and isinstance(stage_body.get("filename"), str) \
                            and stage_body["filename"]:
                        stage_body["filename"] = rel_paths[index] if index < len(rel_paths) \
                            else Path(stage_body["filename"]).name
                        index += 1
            stages.append(copy)
        patch["pipeline"] = stages
    elif isinstance(body.get("filename"), str) and body["filename"]:
        patch["filename"] = rel_paths[0] if rel_paths else Path(body["filename"]).name
    if isinstance(body.get("session_options"), dict):
        patch["session_options"] = json.loads(json.dumps(body["session_options"]))
    return patch


def _primary_role(model: dict[str, Any]) -> str | None:
    return next((role for role, body in model.items() if isinstance(body, dict)
                 and ("pipeline" in body or "filename" in body)), None)


def strip_variant_specific(node: Any) -> Any:
    """genai_config without filename, session_options, pipeline and the variant-level model fields (deep copy)."""
    keys = ("filename", "session_options", "pipeline", *VARIANT_LEVEL_MODEL_KEYS)
    if isinstance(node, dict):
        return {k: strip_variant_specific(v) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [strip_variant_specific(v) for v in node]
    return node


def _model_dirs(genai: dict[str, Any] | None) -> set[str]:
    """Top-level folders of the source that hold a role's ONNX files (decoder/, vision_encoder/ ...)."""
    dirs = set()
    for body in ((genai or {}).get("model") or {}).values():
        if isinstance(body, dict):
            for filename in _role_files(body):
                parts = PurePosixPath(filename.replace("\\", "/")).parts
                if len(parts) > 1 and parts[0] not in (".", ".."):
                    dirs.add(parts[0])
    return dirs


def _write_configs(root: Path, sources: list[tuple[str, Path, dict[str, Any] | None]],
                   role_to_component: dict[str, str]) -> None:
    """configs/: the shared files of the source with the most roles, its genai_config.json made the base."""
    from modelmill.output_guard import MANIFEST_NAME

    def roles(genai: dict[str, Any] | None) -> int:
        return sum(1 for body in ((genai or {}).get("model") or {}).values() if isinstance(body, dict)
                   and ("filename" in body or "pipeline" in body))

    _, source, genai = max(sources, key=lambda s: roles(s[2]))  # the first of equals
    configs = root / CONFIGS_DIR
    configs.mkdir()
    skip = _model_dirs(genai)
    for item in sorted(source.iterdir()):
        if item.name == MANIFEST_NAME or item.name in skip or (item.is_file() and item.suffix in MODEL_SUFFIXES):
            continue  # ModelMill's run manifest describes the source folder, not the package
        if item.name == "genai_config.json" and genai is not None:
            base = strip_variant_specific(genai)
            for role, component in role_to_component.items():
                if isinstance(base["model"].get(role), dict):
                    base["model"][role]["component"] = component
            _write_json(configs / item.name, base)
        elif item.is_dir():
            shutil.copytree(item, configs / item.name)
        elif item.is_file():
            shutil.copy2(item, configs / item.name)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
