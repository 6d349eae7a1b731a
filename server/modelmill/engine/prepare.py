"""Prepare a run: a config document and its overrides in, a checked plan out. The CLI and the editor both use it.

``base_dir`` is where relative folders resolve. The CLI passes None: cache and output folders and the model
path stay as written and resolve against the working directory (and ``--dry-run`` prints them as written). The
editor passes the workspace folder that holds the config: cache and output folders resolve against it, a
relative model path against the config's folder first, then that workspace folder (as validation does).
Relative data paths (data configs' ``data_dir``/``data_files``/local ``data_name``, path params such as
SDLoRA's ``class_data_dir``) are made absolute in the plan: for the CLI against the working directory (Olive's
rule), then the config's folder; for the editor against the config's folder, then the workspace folder.

A run refuses an execution provider this onnxruntime lacks before any work (``check_provider``), in the
terminal and in the editor alike; a plan preview leaves it to the ``ep-not-installed`` warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from modelmill.errors import ConfigError, ModelMillError, PassError

if TYPE_CHECKING:
    from modelmill.config import Document, Environment, WorkflowConfig
    from modelmill.config.diagnostics import Diagnostic
    from modelmill.engine.plan import Plan

DEFAULT_CACHE = ".olive-cache"
DEFAULT_OUTPUT = "models/output"


@dataclass(frozen=True)
class RunDefaults:
    """What the editor's settings add to a config: a cache folder, a device and provider when it names no target."""

    cache_dir: str | None = None
    device: str = "cpu"
    provider: str | None = None


@dataclass(frozen=True)
class PreparedRun:
    """A run ready to start: its plan, and the validated config it came from."""

    plan: Plan
    config: WorkflowConfig


@dataclass(frozen=True)
class Placement:
    """Overrides that place a run's folders, and the output folder to plan with (None: the config's own)."""

    overrides: dict[str, Any]
    output_dir: Path | None


def absolute(value: str, base: Path | None) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() or base is None else (base / path)


def placement(data: Any, base_dir: Path | None, config_dir: Path | None = None,
              defaults: RunDefaults | None = None) -> Placement:
    """Cache and output folders made absolute against ``base_dir``, the model path found, ``defaults`` applied.

    ``data`` is the document's (old or new form) data. With ``base_dir`` None nothing is placed.
    """
    if base_dir is None:
        return Placement({}, None)
    from modelmill.config.normalize import normalize

    defaults = defaults or RunDefaults()
    flat = normalize(data).data
    flat = flat if isinstance(flat, dict) else {}
    overrides: dict[str, Any] = {}
    cache_config = flat.get("cache_config") if isinstance(flat.get("cache_config"), dict) else None
    configured = (cache_config or {}).get("cache_dir") or flat.get("cache_dir") or DEFAULT_CACHE
    if isinstance(configured, list):
        configured = configured[0] if configured else DEFAULT_CACHE
    target = defaults.cache_dir or configured
    if isinstance(target, str):
        cache = str(absolute(target, base_dir))
        overrides["cache_dir"] = cache
        if cache_config is not None:
            overrides["cache_config"] = {**cache_config, "cache_dir": cache}
    if flat.get("target") is None and (defaults.device != "cpu" or defaults.provider):
        accelerator: dict[str, Any] = {"device": defaults.device}
        if defaults.provider:
            accelerator["execution_providers"] = [defaults.provider]
        systems = dict(flat.get("systems") or {}) if isinstance(flat.get("systems"), dict) else {}
        systems["editor_target"] = {"type": "LocalSystem", "accelerators": [accelerator]}
        overrides["systems"] = systems
        overrides["target"] = "editor_target"
    model_path = model_path_of(flat)
    if model_path is not None and not model_path.startswith("sample:") \
            and not Path(model_path).expanduser().is_absolute():
        for folder in (config_dir, base_dir):
            if folder is not None and (folder / model_path).exists():
                overrides["input_model.model_path"] = str((folder / model_path).resolve())
                break
    output = flat.get("output_dir") or DEFAULT_OUTPUT
    return Placement(overrides, absolute(output, base_dir) if isinstance(output, str) else None)


def model_path_of(flat: Any) -> str | None:
    model = flat.get("input_model") if isinstance(flat, dict) else None
    path = model.get("model_path") if isinstance(model, dict) else None
    return path if isinstance(path, str) else None


def require_fetched_sample(model_path: str | None) -> None:
    """A plan preview does not download: refuse a ``sample:`` model that is not fetched yet."""
    if model_path is None or not model_path.startswith("sample:"):
        return
    from modelmill.samples import get_sample

    sample = get_sample(model_path)
    if not sample.fetched:
        raise ModelMillError(f"{model_path} is not fetched yet: run `modelmill samples fetch {sample.name}` "
                             "(a run fetches it too)")


def prepare_run(document: Document, overrides: dict[str, Any] | None, base_dir: Path | None, *,
                env: Environment, defaults: RunDefaults | None = None, fetch_samples: bool = True,
                check_providers: bool = True, overwrite: bool = False, ray_address: str | None = None,
                trust_remote_code: bool = False, protected: list[tuple[Path, str]] | None = None,
                on_warnings: Callable[[list[Diagnostic]], None] | None = None) -> PreparedRun:
    """Validate ``document`` with ``overrides`` (the caller's win over the placement's) and plan it.

    Raises ``ModelMillError`` (``ConfigError`` with every config error, file:line:col). ``on_warnings`` gets the
    config's warnings before planning; ``protected`` adds folders the output must keep clear of.
    """
    from modelmill.config import load_workflow
    from modelmill.engine.data_inputs import anchor_plan, run_bases
    from modelmill.engine.plan import plan_from_config

    placed = placement(document.data, base_dir, document.base_dir, defaults)
    if not fetch_samples:
        from modelmill.config.normalize import normalize

        require_fetched_sample(model_path_of(normalize(document.data).data))
    merged = {**placed.overrides, **(overrides or {})}
    config = load_workflow(document, merged or None, env)  # raises with every error, file:line:col
    if ray_address:
        config.use_ray_cluster(ray_address)
    warnings = [d for d in config.diagnostics if d.severity == "warning"]
    if warnings and on_warnings is not None:
        on_warnings(warnings)
    plan = plan_from_config(config, output_dir=placed.output_dir, overwrite=overwrite, protected=protected)
    # Passes run in a scratch folder: relative data paths are made absolute now, where the run starts.
    anchor_plan(plan, run_bases(base_dir, document.base_dir))
    if check_providers:  # a run (a preview plans what it can, as for providers)
        refuse_hub_data(plan)
        refuse_user_code(plan)
    if trust_remote_code:  # the CLI flag stands in for the config's trust_remote_code
        plan.input_model = plan.input_model.with_attributes(trust_remote_code=True)
    if check_providers and (plan.metrics or any("onnx" in {*step.pass_cls.accepts, step.pass_cls.produces}
                                                for step in plan.steps)):
        # Only ONNX work needs the provider: a training-only plan (finetune --device gpu) runs on torch's CUDA.
        check_provider(plan.accelerator.execution_provider, plan.accelerator.device)
    return PreparedRun(plan, config)


def refuse_hub_data(plan: Any) -> None:
    """Stop before any work when a pass or metric reads a data config that names a Hugging Face hub data set."""
    from modelmill.engine.data import hub_dataset
    from modelmill.engine.data_inputs import data_config_refs

    users: list[tuple[str, Any]] = []
    for step in plan.steps:
        users += [(f"pass {step.name} ({field})", ref) for field, ref in data_config_refs(step.params).items()]
    for metric in plan.metrics or []:
        ref = getattr(metric, "data_config", None)
        ref = ref.model_dump(mode="json", exclude_none=True) if hasattr(ref, "model_dump") else ref
        users.append((f"metric {getattr(metric, 'name', '?')}", ref))
    for user, ref in users:
        config = plan.data_configs.get(ref) if isinstance(ref, str) else ref
        if hasattr(config, "model_dump"):
            config = config.model_dump(mode="json", exclude_none=True)
        hub = hub_dataset(config)
        if hub is not None:
            label = f"data_config {ref!r}" if isinstance(ref, str) else "an inline data_config"
            training = "train" in user or "eval_data" in user
            instead = ("or train on the shipped instructions (-d sample:instructions)" if training else
                       "use a DummyDataContainer, or leave data_config out (calibration uses built-in text)")
            raise ConfigError(f"{user} reads {label}, the Hugging Face hub data set {hub!r}: not found locally, "
                              "and ModelMill does not download data sets",
                              fix="point load_dataset_config.data_name at a local .jsonl/.json/.txt file or folder "
                                  f"(or use a local_dataset with data_files), {instead}")


def refuse_user_code(plan: Any) -> None:
    """Stop before any work when a pass names user code (Olive's OpenVINO recipes: user_script, transform_fn,
    example_input_func), which ModelMill does not run, instead of when that pass is reached after the earlier ones."""
    for step in plan.steps:
        refuse = getattr(step.params, "refuse_scripts", None)
        if not callable(refuse):
            continue
        try:
            refuse(step.pass_cls.name)
        except PassError as exc:
            raise ConfigError(f"pass {step.name}: {exc.message}", fix=exc.fix) from exc


def check_provider(provider: str, device: str) -> None:
    """Refuse before any work when onnxruntime here cannot run the requested provider.

    Read from package metadata: importing onnxruntime in this process would cost as much again in the
    run's worker process, which imports it anyway.
    """
    from modelmill.config.accelerators import EP_PACKAGES, installed_execution_providers

    available = installed_execution_providers()
    if available is None:
        raise ConfigError("onnxruntime is not installed", fix="pip install onnxruntime")
    if provider not in available:
        package = EP_PACKAGES.get(provider, "an onnxruntime build with it")
        raise ConfigError(f"{provider} (device {device}) is not available in this onnxruntime; it has "
                          f"{', '.join(sorted(available))}",
                          # on cpu already, "--device cpu" was no way out: the CPU provider is
                          fix=f"install {package} (pip install '{package}') or use "
                              + ("CPUExecutionProvider" if device == "cpu" else "--device cpu"))
