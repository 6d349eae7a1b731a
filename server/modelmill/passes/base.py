"""The pass contract: one module per pass declares its parameters and transforms a model.

A pass's ``Params`` model is the single source of truth for its parameters: validation,
the JSON Schema, CLI help, completions and hover texts are all generated from it.
Heavy libraries (torch, onnxruntime, transformers) are imported inside ``run`` only, so
that config tooling stays fast.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelKind, ModelRef


class PassParams(BaseModel):
    """Base for pass parameter models: unknown keys are errors (with did-you-mean)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=False, defer_build=True)
    path_params: ClassVar[tuple[str, ...]] = ()
    """Params that name a local file or folder: a relative one is made absolute when the run is planned, against
    the folder the run starts from (``engine/data_inputs.anchor_plan``), since passes run in a scratch folder."""

    @classmethod
    def searchable_fields(cls) -> dict[str, list[Any]]:
        """Parameters a search may vary, with the values it tries by default."""
        result: dict[str, list[Any]] = {}
        for name, info in cls.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if "searchable" in extra:
                result[name] = list(extra["searchable"])  # type: ignore[arg-type]
        return result


class OnnxOutputParams(PassParams):
    """Olive's external-data group, accepted by every pass that writes an ONNX model.

    ModelMill always writes ``model.onnx`` plus one ``model.onnx.data`` side file (what ORT GenAI
    expects and what keeps files under protobuf's 2 GB limit), so these are accepted for Olive
    compatibility and recorded, not acted on.
    """

    save_as_external_data: bool = Field(True, description="Olive compatibility: ModelMill always keeps weights "
                                        "in model.onnx.data beside model.onnx.")
    all_tensors_to_one_file: bool = Field(True, description="Olive compatibility: weights always go to one file.")
    external_data_name: str | None = Field(None, description="Olive compatibility: the side file is always "
                                           "<model file>.data.")
    size_threshold: int = Field(1024, description="Olive compatibility: tensors of at least this many bytes go "
                                "to the side file.")
    convert_attribute: bool = Field(False, description="Olive compatibility: also move attribute tensors.")


def searchable(default: Any, values: list[Any], description: str, **kwargs: Any) -> Any:
    """A parameter field that a search may vary over ``values``."""
    return Field(default, description=description, json_schema_extra={"searchable": values}, **kwargs)


class Pass(ABC):
    """One model transformation.

    Class attributes describe the pass for the registry, the checks and the docs.
    """

    name: ClassVar[str]
    """Olive's canonical pass type name, e.g. ``OnnxDynamicQuantization``."""
    aliases: ClassVar[tuple[str, ...]] = ()
    """Other names Olive (old or new) uses for the same pass."""
    description: ClassVar[str]
    """One paragraph for the person editing a config (hover, docs)."""
    Params: ClassVar[type[PassParams]]
    accepts: ClassVar[frozenset[ModelKind]] = frozenset({"onnx"})
    """Input model kinds the pass can transform."""
    produces: ClassVar[ModelKind] = "onnx"
    input_hint: ClassVar[str | None] = None
    """Why other model kinds are not taken and what to do instead: the fix of a ``model-kind-mismatch`` (None: the
    generic advice to convert or reorder)."""
    supported_precisions: ClassVar[tuple[str, ...] | None] = None
    """Values the ``precision`` parameter may take, where the pass has one."""
    output_is_fused: ClassVar[bool] = False
    """True when the output already has fused attention/layernorm ops (e.g. ModelBuilder)."""
    supported_providers: ClassVar[tuple[str, ...] | None] = None
    """Execution providers the pass supports (None = all)."""
    cancel_grace_s: ClassVar[float] = 0.0
    """Seconds a cancelled run waits for this pass to stop on its own (see engine/cancel.py); 0 = kill at once."""
    required_packages: ClassVar[tuple[str, ...]] = ()
    """Import names of optional packages the pass needs beyond ModelMill's own (e.g. an extra's)."""
    install_hint: ClassVar[str | None] = None
    """How to install ``required_packages`` (validation and the run say it when one is missing)."""

    @classmethod
    def missing_packages(cls) -> list[str]:
        """The ``required_packages`` that are not installed here (looked up without importing them)."""
        return [name for name in cls.required_packages if not _importable(name)]

    @classmethod
    def missing_packages_message(cls) -> str | None:
        missing = cls.missing_packages()
        if not missing:
            return None
        return (f"{cls.name} needs the {', '.join(missing)} package{'s' if len(missing) > 1 else ''}, which "
                f"{'are' if len(missing) > 1 else 'is'} not installed here")

    def require_packages(self) -> None:
        """PassError naming ``install_hint`` when a required package is missing."""
        from modelmill.errors import PassError

        message = self.missing_packages_message()
        if message:
            raise PassError(message, fix=self.install_hint or f"install {', '.join(self.missing_packages())}")

    @classmethod
    def output_kind(cls, input_kind: ModelKind) -> ModelKind:
        """The kind of model the pass produces from an ``input_kind`` model (``produces`` unless it follows the
        input, as OpenVINOQuantization's does; a composite stays one where the pass runs per component)."""
        if input_kind == "composite" and cls.per_component():
            return "composite"
        return cls.produces

    @classmethod
    def per_component(cls) -> bool:
        """True when the pass runs on each ONNX component of a composite model (SplitModel's output), as Olive runs
        a pass that does not take composites: an ONNX → ONNX pass."""
        return "composite" not in cls.accepts and "onnx" in cls.accepts and cls.output_kind("onnx") == "onnx"

    @classmethod
    def takes(cls, kind: ModelKind) -> bool:
        """Whether the pass can run on a model of ``kind`` (itself, or component by component)."""
        return kind in cls.accepts or (kind == "composite" and cls.per_component())

    @classmethod
    def cache_context(cls, params: PassParams) -> dict[str, Any] | None:
        """Inputs of the output besides the model, params, accelerator, libraries and the pass's code, for the
        cache key (e.g. the machine a measured setting was tuned on). None: nothing else."""
        return None

    @abstractmethod
    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        """Transform ``model`` into a new model written under ``ctx.output_dir``."""


def _importable(name: str) -> bool:
    """Whether the module ``name`` is installed, found without importing it (a dotted name's parent package is
    imported, as Python must; a missing parent means the module is missing too)."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
