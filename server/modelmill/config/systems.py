"""``systems``: where passes run (host) and what they optimize for (target), reference §3."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from modelmill.config.accelerators import DEVICES
from modelmill.config.common import StrictModel, by_kind

SYSTEM_TYPES = ("LocalSystem", "PythonEnvironment", "Docker", "Ray")


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

    @field_validator("device", mode="before")
    @classmethod
    def _lower_device(cls, value: Any) -> Any:
        """Olive lower-cases the device (``validate_lowercase``), so \"GPU\" is gpu."""
        return value.lower() if isinstance(value, str) else value

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


# "host:port" of a cluster's GCS, "ray://host:port" (Ray Client), "auto" or "local" (Ray's own words).
_RAY_ADDRESS = re.compile(r"^(auto|local|(ray://)?[A-Za-z0-9_.\-\[\]:]+:\d{1,5})$")
_BYTE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
               "gib": 2**30, "tib": 2**40}


def parse_bytes(value: int | str) -> int:
    """``16GB`` / ``512MiB`` / ``1000`` → bytes (ValueError with the accepted forms otherwise)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    if not match or match.group(2).lower() not in _BYTE_UNITS:
        raise ValueError(f"'{value}' is not a size: write bytes (4000000000) or text such as \"4GB\" or \"512MiB\"")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2).lower()])


class RaySystem(_System):
    """A Ray cluster: when it is the workflow's host, every search candidate (its passes and its evaluation)
    runs as a Ray task on the cluster's nodes. A ModelMill addition: Olive has no Ray system."""

    type: Literal["Ray"] = Field(description="System type (case-insensitive).")
    address: str | None = Field(
        None, description="The cluster: \"auto\" (the one this machine joined with `ray start`), \"HOST:6379\" "
                          "(its head node's GCS port), \"ray://HOST:10001\" (Ray Client), or unset to start a "
                          "local Ray instance for the run. `modelmill run --ray-address` overrides it.")
    num_cpus: float = Field(1, gt=0, description="CPUs each candidate reserves on a node (also its thread "
                                                 "count for PyTorch and ONNX Runtime).")
    num_gpus: float = Field(0, ge=0, description="GPUs each candidate reserves on a node (0: CPU only).")
    memory: int | str | None = Field(
        None, description="Memory each candidate reserves, in bytes or as text such as \"8GB\"; Ray places a "
                          "candidate only on a node with that much unreserved memory.")
    max_concurrent_candidates: int | None = Field(
        None, ge=1, description="Candidates running at once (default: as many as the cluster's CPUs and GPUs "
                                "fit). The tpe sampler proposes this many at a time.")
    max_retries: int = Field(2, ge=0, le=20, description="Times a candidate runs again after its worker process "
                                                          "or node died (or it timed out), before it counts as "
                                                          "failed.")
    candidate_timeout_s: float | None = Field(
        None, gt=0, description="A candidate still running after this many seconds is cancelled and retried "
                                "(default: no limit).")
    connect_timeout_s: float = Field(30, gt=0, description="Seconds to wait for the cluster to answer before the "
                                                           "run fails.")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _RAY_ADDRESS.match(value.strip()):
            raise ValueError(f"'{value}' is not a Ray address: use \"auto\", \"HOST:PORT\" or \"ray://HOST:PORT\"")
        return value.strip() if value else value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_bytes(value)
        return value

    @property
    def memory_bytes(self) -> int | None:
        return parse_bytes(self.memory) if self.memory is not None else None


System = Annotated[LocalSystem | PythonEnvironmentSystem | DockerSystem | RaySystem, Field(discriminator="type")]
if TYPE_CHECKING:  # by_kind builds the runtime type; checkers see the plain union
    SystemRef = str | System
else:
    SystemRef = by_kind(scalar=str, object=System)
