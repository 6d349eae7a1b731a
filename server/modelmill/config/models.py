"""The workflow config in Olive's current (flat) form, as typed pydantic models.

Older forms (``engine:`` and ``config:`` blocks, renamed keys and passes) are rewritten into
this form by ``normalize`` first. Structure and single-field rules live here; rules that
span sections (references, pass parameters, accelerators vs passes) live in ``checks``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, PrivateAttr, field_validator

from modelmill.config.accelerators import resolve_accelerator
from modelmill.config.common import StrictModel, by_kind
from modelmill.config.evaluation import DataConfig, Evaluator, EvaluatorRef
from modelmill.config.input_models import MODEL_KINDS, InputModel
from modelmill.config.systems import System, SystemRef
from modelmill.engine.context import Accelerator
from modelmill.errors import ConfigError

if TYPE_CHECKING:
    from modelmill.config.diagnostics import Diagnostic
    from modelmill.passes.base import Pass, PassParams


class PassEntry(StrictModel):
    """One pass: its `type` and its parameters, written next to `type`."""

    model_config = ConfigDict(extra="allow")  # parameters; checked against the pass's own Params model

    type: str = Field(description="Pass type, e.g. ModelBuilder, OrtTransformersOptimization, "
                                  "OnnxDynamicQuantization (case-insensitive; old names are accepted).")
    host: SystemRef | None = Field(None, description="System this pass runs on, if not the workflow's host.")
    evaluator: EvaluatorRef | None = Field(None, description="Evaluator for this pass's search, inline.")

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


# One entry, or a non-empty list of alternatives for the search.
if TYPE_CHECKING:  # by_kind builds the runtime type; checkers see the plain union
    PassValue = PassEntry | list[PassEntry]
else:
    PassValue = by_kind(object=PassEntry, list=Annotated[list[PassEntry], Field(min_length=1)])


class SearchStrategy(StrictModel):
    """How to search over pass alternatives and searchable parameters."""

    execution_order: Literal["joint", "pass-by-pass"] = Field(
        description="joint: search all passes together; pass-by-pass: tune each pass in turn.")
    sampler: Literal["tpe", "random", "sequential"] = Field(
        description="How to pick the next trial: tpe (Bayesian), random, or sequential (every combination in "
                    "order; with max_samples 0 this is an exhaustive search).")
    max_samples: int = Field(0, ge=0, description="Most trials to run; 0 means no limit.")
    seed: int = Field(1, description="Random seed for the random and tpe samplers.")
    multivariate: bool = Field(True, description="tpe: model parameters jointly.")
    group: bool | None = Field(None, description="tpe: group parameters that appear together.")
    output_model_num: int | None = Field(None, ge=1, description="How many of the best models to keep; "
                                         "unset keeps the whole Pareto front.")
    stop_when_goals_met: bool = Field(False, description="joint only: stop once every metric goal is met.")
    max_iter: int | None = Field(None, ge=1, description="joint only: most search iterations.")
    max_time: int | None = Field(None, ge=1, description="joint only: time budget in seconds.")
    include_pass_params: bool = Field(True, description="false searches only over pass alternatives (lists "
                                      "under passes), keeping every parameter fixed.")


class PackagingConfig(StrictModel):
    """How to package the output models."""

    type: Literal["Zipfile", "Dockerfile"] = Field(description="Package as a zip file or as a Dockerfile.")
    name: str = Field("OutputModels", description="Name of the package.")
    config: dict[str, Any] = Field(default_factory=dict,
                                   description="export_in_mlflow_format; Dockerfile: base_image, requirements_file.")


class CacheConfig(StrictModel):
    """Cache settings in one block; when present they override the top-level cache keys."""

    cache_dir: str | list[str] | None = Field(None, description="Folder for the cache.")
    clean_cache: bool = Field(False, description="Empty the cache before the run.")
    clean_evaluation_cache: bool = Field(False, description="Forget earlier evaluation results.")
    account_name: str | None = Field(None, description="Azure storage account of a shared cache.")
    container_name: str | None = Field(None, description="Azure blob container of a shared cache.")
    enable_shared_cache: bool = Field(False, description="Read from the shared cache.")
    update_shared_cache: bool = Field(True, description="Write new results to the shared cache.")



class WorkflowConfig(StrictModel):
    """An Olive-compatible workflow: an input model, a chain of passes, and where and how to run them."""

    workflow_id: str = Field("default_workflow", description="Name of the workflow (Olive keeps its cache under "
                             "<cache_dir>/<workflow_id>; ModelMill's cache is content-addressed, shared by all).")
    input_model: InputModel = Field(description="The model to optimize: HfModel (a Hugging Face folder), "
                                    "PyTorchModel or ONNXModel.")
    systems: dict[str, System] | None = Field(
        None, description="Named systems that host and target refer to, e.g. local_system with its accelerator.")
    data_configs: list[DataConfig] = Field(default_factory=list, description="Datasets, referenced by name.")
    evaluators: dict[str, Evaluator] | None = Field(None, description="Named evaluators (sets of metrics).")
    passes: dict[str, PassValue] = Field(
        default_factory=dict,
        description="The passes, run in the order written. A list of entries gives alternatives for the search "
                    "(without search only the first runs).")
    search_strategy: by_kind(object=SearchStrategy, scalar=bool) | None = Field(  # type: ignore[valid-type]
        None, description="Search over pass alternatives and parameters; false or unset runs the passes once.")
    evaluator: EvaluatorRef | None = Field(None, description="Name of the evaluator that measures the models.")
    host: SystemRef | None = Field(None, description="Name of the system the passes run on (default: this machine).")
    target: SystemRef | None = Field(
        None, description="Name of the system to optimize for; its accelerator picks the execution provider "
                          "(default: cpu with CPUExecutionProvider).")
    evaluate_input_model: bool = Field(True, description="Also evaluate the input model (needs an evaluator).")
    output_dir: str | None = Field(None, description="Folder for the output model(s) (default: current folder).")
    cache_dir: by_kind(scalar=str, list=list[str]) = Field(  # type: ignore[valid-type]
        ".olive-cache", description="Folder for cached intermediate models and results.")
    clean_cache: bool = Field(False, description="Empty the cache before the run.")
    clean_evaluation_cache: bool = Field(False, description="Forget earlier evaluation results.")
    enable_shared_cache: bool = Field(False, description="Read from the shared (Azure) cache.")
    cache_config: CacheConfig | None = Field(None, description="Cache settings in one block (overrides cache_dir, "
                                             "clean_cache, clean_evaluation_cache and enable_shared_cache).")
    log_severity_level: int = Field(1, ge=0, le=4, description="Log detail: 0 verbose, 1 info, 2 warning, 3 error, "
                                    "4 fatal. An integer, not a name.")
    ort_log_severity_level: int = Field(3, ge=0, le=4, description="ONNX Runtime's C++ log level (0-4).")
    ort_py_log_severity_level: int = Field(3, ge=0, le=4, description="ONNX Runtime's Python log level (0-4).")
    log_to_file: bool = Field(False, description="Also write the log to olive-<timestamp>.log.")
    no_artifacts: bool = Field(False, description="Do not write footprint and metric files next to the output.")
    plot_pareto_frontier: bool = Field(False, description="Plot the Pareto front of the search results.")
    packaging_config: by_kind(object=PackagingConfig, list=list[PackagingConfig]) | None = Field(  # type: ignore
        None, description="Package the output models (zip file or Dockerfile).")

    _diagnostics: list[Diagnostic] = PrivateAttr(default_factory=list)
    _source: str | None = PrivateAttr(None)

    @field_validator("search_strategy")
    @classmethod
    def _no_true(cls, value: Any) -> Any:
        if value is True:
            raise ValueError("true is not supported: give an object such as "
                             "{\"execution_order\": \"joint\", \"sampler\": \"tpe\"}, or false")
        return value

    # ------------------------------------------------------------------------ accessors

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Warnings and hints found when the config was loaded with ``load_workflow``."""
        return self._diagnostics

    @property
    def source(self) -> str | None:
        """The file the config was loaded from, if any."""
        return self._source

    @property
    def search_enabled(self) -> bool:
        return isinstance(self.search_strategy, SearchStrategy)

    @property
    def input_kind(self) -> str | None:
        """hf / pytorch / onnx, or None for model types ModelMill does not run."""
        return MODEL_KINDS.get(self.input_model.type)

    def system(self, ref: Any) -> Any:
        """The system a host/target value names (or the inline system itself)."""
        if isinstance(ref, str):
            if not self.systems or ref not in self.systems:
                raise ConfigError(f"system '{ref}' is not defined", fix="add it under systems")
            return self.systems[ref]
        return ref

    def use_ray_cluster(self, address: str) -> None:
        """``--ray-address``: the host's Ray system gets this address; without a Ray host, a Ray system
        named ``ray_cluster`` with that address becomes the host."""
        from pydantic import ValidationError

        from modelmill.config.systems import RaySystem

        try:
            system = RaySystem(type="Ray", address=address)
            host = self.system(self.host) if self.host is not None else None
            if isinstance(host, RaySystem):
                host.address = system.address
                return
        except ValidationError as exc:
            raise ConfigError(exc.errors()[0]["msg"].removeprefix("Value error, "),
                              fix="e.g. --ray-address auto, --ray-address HEAD:6379 or --ray-address ray://HEAD:10001",
                              where="--ray-address") from exc
        self.systems = {**(self.systems or {}), "ray_cluster": system}
        self.host = "ray_cluster"

    def resolved_evaluator(self) -> Evaluator | None:
        if isinstance(self.evaluator, str):
            if not self.evaluators or self.evaluator not in self.evaluators:
                raise ConfigError(f"evaluator '{self.evaluator}' is not defined", fix="add it under evaluators")
            return self.evaluators[self.evaluator]
        return self.evaluator

    def target_accelerator(self) -> Accelerator:
        """The device and EP the run optimizes for, by Olive's rules (reference §3)."""
        target = self.system(self.target) if self.target is not None else None
        try:
            accelerator = resolve_accelerator(target.model_dump() if target is not None else None)
        except ValueError as exc:
            raise ConfigError(str(exc), fix="add execution_providers to the target system's accelerator",
                              where="target") from exc
        accelerators = getattr(target, "accelerators", None) or []
        memory = accelerators[0].memory if accelerators else None
        if memory is None:
            return accelerator
        from dataclasses import replace

        from modelmill.config.systems import parse_bytes

        try:
            return replace(accelerator, memory=parse_bytes(memory))
        except ValueError as exc:
            raise ConfigError(str(exc), fix="write the accelerator's memory in bytes or as text such as \"16GB\"",
                              where="target") from exc

    def pass_chain(self) -> list[tuple[str, type[Pass], PassParams]]:
        """Each pass's name, class and validated parameters; the first alternative where there are several.

        Search markers are resolved as a run without search would: DEFAULT_VALUE and
        SEARCHABLE_VALUES use the default, a list of candidate values its first element.
        """
        from pydantic import ValidationError

        from modelmill.config.pass_checks import not_runnable, not_runnable_message
        from modelmill.config.pass_values import split_params
        from modelmill.passes.registry import find_pass

        chain: list[tuple[str, type[Pass], PassParams]] = []
        for name, value in self.passes.items():
            entry = value[0] if isinstance(value, list) else value
            cls = find_pass(entry.type)
            olive = not_runnable(entry.type, {"metadata_only": entry.params.get("metadata_only")})
            if olive is not None:
                message, hint = not_runnable_message(olive, entry.params)
                raise ConfigError(message, fix=hint, where=f"passes.{name}.type")
            if cls is None:
                raise ConfigError(f"unknown pass type '{entry.type}'", where=f"passes.{name}.type")
            split = split_params(entry.params, cls.Params, self.search_enabled)
            if split.problems:
                problem = split.problems[0]
                raise ConfigError(problem.message, fix=problem.hint, where=f"passes.{name}.{problem.param}")
            # Keys the Params do not model were checked (Olive parameters ModelMill does not act on, or keys Olive
            # ignores with a warning): the run leaves them out, as Olive leaves out keys it does not know.
            fixed = {key: value for key, value in split.fixed.items() if key in cls.Params.model_fields}
            try:
                params = cls.Params.model_validate(fixed)
            except ValidationError as exc:
                raise ConfigError(f"invalid parameters for pass '{name}' ({cls.name}): {exc}",
                                  where=f"passes.{name}") from exc
            chain.append((name, cls, params))
        return chain
