"""``systems``: where passes run (host) and what they optimize for (target), reference §3."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modelmill.config.accelerators import DEVICES
from modelmill.config.common import StrictModel, by_kind

SYSTEM_TYPES = ("LocalSystem", "PythonEnvironment", "Docker")


class AcceleratorConfig(StrictModel):
    """One accelerator: a device and the execution provider that runs the model on it."""

    device: Literal[DEVICES] | None = Field(  # type: ignore[valid-type]
        None, description="Device to optimize for. With only a device, cpu uses CPUExecutionProvider and gpu "
                          "CUDAExecutionProvider; other devices need execution_providers.")
    execution_providers: list[by_kind(scalar=str, list=list[str])] | None = Field(  # type: ignore[valid-type]
        None, description="Exactly one ONNX Runtime execution provider, e.g. [\"CPUExecutionProvider\"] or "
                          "[\"CUDAExecutionProvider\"]. Olive supports one per accelerator.")
    memory: int | str | None = Field(
        None, description="Device memory in bytes or as text such as \"16GB\"; needed by CaptureSplitInfo's "
                          "cost_model.")

    @field_validator("execution_providers")
    @classmethod
    def _one_ep(cls, value: list[Any] | None) -> list[Any] | None:
        if value and len(value) > 1:
            raise ValueError("only one execution provider is supported per accelerator")
        for entry in value or ():
            name = entry[0] if isinstance(entry, list) and entry else entry
            if isinstance(name, str) and not name.endswith("ExecutionProvider"):
                raise ValueError(f"'{name}' is not an execution provider name: they end in 'ExecutionProvider'")
        return value

    @model_validator(mode="after")
    def _device_or_ep(self) -> AcceleratorConfig:
        if self.device is None and not self.execution_providers:
            raise ValueError("an accelerator needs a device or execution_providers")
        return self

    @property
    def execution_provider(self) -> str | None:
        if not self.execution_providers:
            return None
        first = self.execution_providers[0]
        return first[0] if isinstance(first, list) else first


class _System(StrictModel):
    accelerators: list[AcceleratorConfig] | None = Field(
        None, description="The device and execution provider to optimize for, e.g. [{\"device\": \"cpu\", "
                          "\"execution_providers\": [\"CPUExecutionProvider\"]}]. At most one accelerator.")
    hf_token: bool | None = Field(None, description="Log in to the Hugging Face hub with the saved token.")
    # "At most one accelerator" is checked in checks.py: a validator here would only run when
    # every accelerator is valid, hiding the count error behind the others.


class LocalSystem(_System):
    """This machine, in the current Python environment."""

    type: Literal["LocalSystem"] = Field(description="System type (case-insensitive in Olive).")


class PythonEnvironmentSystem(_System):
    """Another Python environment on this machine."""

    type: Literal["PythonEnvironment"] = Field(description="System type (case-insensitive in Olive).")
    python_environment_path: str | None = Field(None, description="Folder that holds that environment's python.")
    environment_variables: dict[str, str] | None = Field(None, description="Variables set for the environment.")
    prepend_to_path: list[str] | None = Field(None, description="Folders put in front of PATH.")


class DockerSystem(_System):
    """A Docker container built from a Dockerfile."""

    type: Literal["Docker"] = Field(description="System type (case-insensitive in Olive).")
    dockerfile: str = Field(description="The Dockerfile, relative to build_context_path.")
    build_context_path: str = Field(description="Folder sent to docker build.")
    image_name: str = Field("olive-docker:latest", description="Tag of the image to build.")
    work_dir: str = Field("/olive-ws", description="Absolute working folder inside the container.")
    build_args: dict[str, Any] | None = Field(None, description="docker build --build-arg values.")
    run_params: dict[str, Any] | None = Field(None, description="Extra docker run parameters.")
    clean_image: bool = Field(True, description="Remove the image when the run ends.")

    @field_validator("work_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must be an absolute path inside the container")
        return value


System = Annotated[LocalSystem | PythonEnvironmentSystem | DockerSystem, Field(discriminator="type")]
if TYPE_CHECKING:  # by_kind builds the runtime type; checkers see the plain union
    SystemRef = str | System
else:
    SystemRef = by_kind(scalar=str, object=System)
