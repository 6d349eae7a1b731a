"""A plan: the resolved input model and the passes to run on it, checked before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill import remote_code
from modelmill.engine.context import Accelerator
from modelmill.engine.model import ModelKind, ModelRef, several_onnx_files
from modelmill.errors import ConfigError
from modelmill.passes.base import Pass, PassParams

if TYPE_CHECKING:
    from modelmill.config.models import WorkflowConfig
    from modelmill.config.systems import RaySystem


@dataclass
class PlanStep:
    name: str
    """The pass's key in the config (e.g. ``conversion``)."""
    pass_cls: type[Pass]
    params: PassParams

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.pass_cls.name,
                "params": self.params.model_dump(mode="json", exclude_defaults=True)}


@dataclass
class SearchSpace:
    """Searched parameters: (step index, parameter) → the values to try."""

    dimensions: dict[tuple[int, str], list[Any]] = field(default_factory=dict)

    def optuna_name(self, step: PlanStep, param: str) -> str:
        return f"{step.name}.{param}"

    def size(self) -> int:
        size = 1
        for values in self.dimensions.values():
            size *= len(values)
        return size

    def for_steps(self, indices: set[int]) -> SearchSpace:
        return SearchSpace({k: v for k, v in self.dimensions.items() if k[0] in indices})



@dataclass(frozen=True)
class ClusterSpec:
    """What the driver needs from the ``Ray`` system (picklable, no ray import)."""

    name: str
    address: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None
    max_concurrent: int | None = None
    max_retries: int = 2
    candidate_timeout_s: float | None = None
    connect_timeout_s: float = 30.0

    @classmethod
    def from_system(cls, name: str, system: "RaySystem") -> "ClusterSpec":
        return cls(name=name, address=system.address, num_cpus=system.num_cpus, num_gpus=system.num_gpus,
                   memory=system.memory_bytes, max_concurrent=system.max_concurrent_candidates,
                   max_retries=system.max_retries, candidate_timeout_s=system.candidate_timeout_s,
                   connect_timeout_s=system.connect_timeout_s)

    def describe(self) -> dict[str, Any]:
        return {"system": self.name, "address": self.address or "local", "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus, "memory": self.memory, "max_concurrent_candidates": self.max_concurrent,
                "max_retries": self.max_retries, "candidate_timeout_s": self.candidate_timeout_s}

    @property
    def threads(self) -> int:
        return max(1, int(self.num_cpus))



@dataclass
class Plan:
    input_model: ModelRef
    steps: list[PlanStep]
    output_dir: Path
    cache_dir: Path
    accelerator: Accelerator = field(default_factory=Accelerator)
    data_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source_config: dict[str, Any] = field(default_factory=dict)
    metrics: list[Any] | None = None
    """The evaluator's metrics (config Metric models); None = no evaluation."""
    search: dict[str, Any] | None = None
    """The search strategy (sampler, execution_order, seed, budgets); None = run the passes once."""
    search_space: SearchSpace = field(default_factory=lambda: SearchSpace())
    evaluate_input_model: bool = True
    base_dir: Path | None = None
    """Folder of the config file: user scripts and relative data paths resolve against it."""
    cluster: ClusterSpec | None = None
    """The Ray cluster that runs the candidates (the workflow's host is a Ray system); None = this process."""
    overwrite: bool = False
    """Replace an existing output folder that ModelMill did not write (``--overwrite``)."""
    protected: list[tuple[Path, str]] = field(default_factory=list)
    """Folders the output may neither be nor contain (see ``output_guard``), with what each is."""

    def check(self) -> None:
        """Fail before any work when the output folder is unsafe to replace, or a pass cannot take the model
        the previous one produces."""
        from modelmill.engine.output import check_output_target

        check_output_target(self.output_dir, self.overwrite, self.protected)
        if not self.steps and not (self.metrics and self.evaluate_input_model):
            # Without passes a workflow only evaluates its input model (Olive does the same): it needs an evaluator.
            raise ConfigError("the workflow has no passes", fix="add at least one entry under 'passes', or an "
                              "evaluator to only measure the input model")
        kind: ModelKind = self.input_model.kind
        previous = "the input model"
        for step in self.steps:
            missing = step.pass_cls.missing_packages_message()
            if missing:  # before any pass runs, not after the ones before it
                raise ConfigError(f"pass '{step.name}': {missing}", where=f"passes.{step.name}.type",
                                  fix=step.pass_cls.install_hint or "install it")
            if not step.pass_cls.takes(kind):
                wanted = " or ".join(sorted(step.pass_cls.accepts))
                raise ConfigError(
                    f"pass '{step.name}' ({step.pass_cls.name}) takes a {wanted} model, but {previous} is {kind}",
                    fix=_kind_fix(step.pass_cls, kind), where=f"passes.{step.name}")
            kind = step.pass_cls.output_kind(kind)
            previous = f"the output of '{step.name}'"

    def describe(self) -> dict[str, Any]:
        return {"input_model": self.input_model.to_json(), "passes": [s.describe() for s in self.steps],
                "search_space": {f"{self.steps[i].name}.{p}": v for (i, p), v in self.search_space.dimensions.items()},
                "search": self.search, "metrics": [m.model_dump(mode="json", exclude_none=True)
                                                   for m in self.metrics or []],
                "device": self.accelerator.device, "execution_provider": self.accelerator.execution_provider,
                "output_dir": str(self.output_dir), "cache_dir": str(self.cache_dir),
                **({"cluster": self.cluster.describe()} if self.cluster is not None else {})}


def _kind_fix(pass_cls: type[Pass], kind: ModelKind) -> str:
    if pass_cls.input_hint:
        return pass_cls.input_hint
    if "onnx" in pass_cls.accepts and kind in ("hf", "pytorch"):
        return "convert first: put ModelBuilder (LLMs) or OnnxConversion before this pass"
    if "hf" in pass_cls.accepts and kind == "onnx":
        return "this pass needs the Hugging Face folder: move it before the conversion pass, or use an ONNX pass"
    return "reorder the passes"


def resolve_input_model(config: "WorkflowConfig") -> ModelRef:
    """The config's input_model as a local ModelRef (samples fetched, hub ids refused)."""
    from modelmill.samples import resolve_model_path

    spec = config.input_model
    model_type = spec.type.lower()
    path = resolve_model_path(spec.model_path)
    attributes: dict[str, Any] = {"task": getattr(spec, "task", None)}
    if _trusts_remote_code(spec):
        attributes[remote_code.ATTRIBUTE] = True  # only when set: other models' cache keys stay as they were
    torch_dtype = _load_dtype(spec)
    if torch_dtype:  # only when set, as above; the PyTorch-level passes (rtn, gptq, ...) load in it
        attributes["torch_dtype"] = torch_dtype
    if model_type == "hfmodel":
        adapter = _input_adapter(spec, path)
        if adapter is not None:
            base, adapter_dir = adapter
            # path = the adapter's folder: the input's content hash then covers the adapter weights.
            holder = adapter_dir if getattr(spec, "adapter_path", None) else path
            return ModelRef(kind="hf", path=holder, attributes={**attributes, "base_model_path": str(base),
                            "adapter_path": str(adapter_dir.relative_to(holder))})
        if not (path / "config.json").exists():
            raise ConfigError(f"input model folder {path} has no config.json, so it is not a Hugging Face model",
                              fix="point model_path at a folder saved with save_pretrained, or use type ONNXModel "
                                  "for an ONNX model", where="input_model.model_path")
        return ModelRef(kind="hf", path=path, attributes=attributes)
    if model_type == "onnxmodel":
        if path.is_file():
            return ModelRef(kind="onnx", path=path.parent, onnx_file=path.name, attributes=attributes)
        name = getattr(spec, "onnx_file_name", None)
        candidates = [name] if name else [p.name for p in sorted(path.glob("*.onnx"))]
        if not candidates or not (path / candidates[0]).exists():
            raise ConfigError(f"no ONNX file found in {path}", fix="set model_path to the .onnx file or its folder",
                              where="input_model.model_path")
        ambiguous = None if name else several_onnx_files(path)
        if ambiguous:
            raise ConfigError(f"input model folder {ambiguous}", where="input_model.model_path",
                              fix="set input_model.onnx_file_name to the one to use (or model_path to that file)")
        if len(candidates) > 1:
            candidates = ["model.onnx"]
        return ModelRef(kind="onnx", path=path, onnx_file=candidates[0], attributes=attributes)
    if model_type == "pytorchmodel":
        attributes["io_config"] = getattr(spec, "io_config", None)
        if path.is_dir() and (path / "config.json").exists():
            return ModelRef(kind="hf", path=path, attributes=attributes)
        return ModelRef(kind="pytorch", path=path, attributes=attributes)
    if model_type == "diffusersmodel":
        if not (path / "model_index.json").exists():
            raise ConfigError(f"input model folder {path} has no model_index.json, so it is not a diffusers pipeline",
                              fix="point model_path at a pipeline folder saved with save_pretrained",
                              where="input_model.model_path")
        attributes.pop("task", None)
        attributes["model_variant"] = getattr(spec, "model_variant", "auto")
        return ModelRef(kind="diffusers", path=path, attributes=attributes)
    raise ConfigError(f"input model type {spec.type} is not supported by ModelMill yet",
                      fix="use HfModel, PyTorchModel, ONNXModel or DiffusersModel", where="input_model.type")


LOAD_DTYPES = {"auto": "auto", "float32": "float32", "float": "float32", "fp32": "float32", "float16": "float16",
               "half": "float16", "fp16": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}
"""Olive's spellings of ``load_kwargs.torch_dtype`` → the one name the passes load in (quant.checkpoint.load_dtype
knows only these)."""


def _load_dtype(spec: Any) -> str | None:
    """``load_kwargs.torch_dtype`` (Olive's spellings: ``float16``, ``torch.float16``, ``fp16``, ``auto``), checked
    and named one way."""
    value = getattr(getattr(spec, "load_kwargs", None), "torch_dtype", None)
    if value is None:
        return None
    name = str(value).removeprefix("torch.")
    if name not in LOAD_DTYPES:
        raise ConfigError(f"load_kwargs.torch_dtype {value!r} is not a dtype a model can be loaded in",
                          fix="use float32, float16, bfloat16 or auto", where="input_model.load_kwargs.torch_dtype")
    return LOAD_DTYPES[name]


def _trusts_remote_code(spec: Any) -> bool:
    """The config's consent to run the model's own code (HfModel load_kwargs, PyTorchModel model_attributes)."""
    load_kwargs = getattr(spec, "load_kwargs", None)
    attributes = getattr(spec, "model_attributes", None) or {}
    return getattr(load_kwargs, "trust_remote_code", None) is True or attributes.get(remote_code.ATTRIBUTE) is True


def _input_adapter(spec: Any, path: Path) -> tuple[Path, Path] | None:
    """(base folder, adapter folder) when the input is base + adapter_path, an adapter, or a finetune output."""
    from modelmill.finetune.adapters import adapter_base, find_adapter, is_adapter
    from modelmill.samples import resolve_model_path

    adapter_path = getattr(spec, "adapter_path", None)
    if adapter_path:
        adapter = resolve_model_path(adapter_path)
        found = adapter if is_adapter(adapter) else find_adapter(adapter)
        if found is None:
            raise ConfigError(f"{adapter} holds no LoRA adapter (no adapter_config.json)",
                              fix="point adapter_path at a folder saved by peft (or a finetune output's adapter/)",
                              where="input_model.adapter_path")
        if not (path / "config.json").exists():
            raise ConfigError(f"input model folder {path} has no config.json, so it is not a base model for the "
                              "adapter", fix="point model_path at the base model's folder", where="input_model.model_path")
        return path, found
    found = find_adapter(path)
    return (adapter_base(found), found) if found else None


def plan_from_config(config: "WorkflowConfig", output_dir: str | Path | None = None, overwrite: bool = False,
                     protected: list[tuple[Path, str]] | None = None) -> Plan:
    """The plan of a validated config; ``protected`` adds folders the output must keep clear of (the editor's
    workspace folders)."""
    steps = [PlanStep(name, cls, params) for name, cls, params in config.pass_chain()]
    data_configs = {dc.name: dc.model_dump(mode="json", exclude_none=True) for dc in (config.data_configs or [])}
    cache_dir = config.cache_config.cache_dir if config.cache_config and config.cache_config.cache_dir \
        else config.cache_dir
    if isinstance(cache_dir, list):
        cache_dir = cache_dir[0]
    evaluator = config.resolved_evaluator()
    input_model = resolve_input_model(config)
    base_dir = Path(config.source).resolve().parent if config.source and not config.source.startswith("<") else None
    resolved_cache = Path(cache_dir or ".olive-cache").expanduser().resolve()
    guarded = [*(protected or []), (input_model.path, "the input model"), (resolved_cache, "the cache folder")]
    if base_dir is not None:
        guarded.append((base_dir, "the config's folder"))
    plan = Plan(
        input_model=input_model,
        steps=steps,
        # not resolved: a symbolic link must stay visible to the output check
        output_dir=Path(os.path.abspath(Path(output_dir or config.output_dir or "models/output").expanduser())),
        cache_dir=resolved_cache,
        accelerator=config.target_accelerator(),
        data_configs=data_configs,
        source_config=config.model_dump(mode="json", exclude_none=True),
        metrics=_metrics(evaluator),
        search=config.search_strategy.model_dump(mode="json") if config.search_enabled else None,
        search_space=_search_space(config, steps),
        evaluate_input_model=config.evaluate_input_model,
        base_dir=base_dir,
        cluster=_cluster(config),
        overwrite=overwrite,
        protected=guarded,
    )
    plan.check()
    return plan


def _metrics(evaluator: Any) -> list[Any] | None:
    """The evaluator's metrics; an LMEvaluator's tasks become ``lm_eval`` metrics (evaluate/lm_eval_bridge.py)."""
    if evaluator is None:
        return None
    metrics = list(evaluator.metrics or [])
    if evaluator.type == "LMEvaluator":
        from modelmill.config.evaluation import Metric
        from modelmill.evaluate.lm_eval_bridge import evaluator_metrics

        metrics += [Metric.model_validate(metric) for metric in evaluator_metrics(evaluator.type_args)]
    return metrics or None


def _cluster(config: "WorkflowConfig") -> ClusterSpec | None:
    """The Ray cluster the workflow's ``host`` names, if it names one."""
    from modelmill.config.systems import RaySystem

    if config.host is None:
        return None
    system = config.system(config.host)
    if not isinstance(system, RaySystem):
        return None
    return ClusterSpec.from_system(config.host if isinstance(config.host, str) else "host", system)


def _search_space(config: "WorkflowConfig", steps: list[PlanStep]) -> SearchSpace:
    """What the config marks searchable: lists / SEARCHABLE_VALUES / SearchParameter values."""
    from modelmill.config.pass_values import split_params

    space = SearchSpace()
    if not config.search_enabled or not config.search_strategy.include_pass_params:
        return space
    for index, step in enumerate(steps):
        value = config.passes[step.name]
        entry = value[0] if isinstance(value, list) else value
        for param, values in split_params(entry.params, step.pass_cls.Params, True).candidates.items():
            if len(values) > 1:
                space.dimensions[(index, param)] = values
    return space
