"""Passes on composite models: an ONNX → ONNX pass runs on each component, as Olive runs a pass that does not take
composite models. Each component's output goes to a subfolder named after it (``split_0/model.onnx`` ...)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError

if TYPE_CHECKING:
    from modelmill.passes.base import Pass, PassParams


@dataclasses.dataclass
class _ComponentContext(PassContext):
    """The pass's context for one component: its progress is a share of the whole pass's."""

    component: str = ""
    share: tuple[float, float] = (0.0, 1.0)

    def progress(self, fraction: float, message: str = "") -> None:
        start, end = self.share
        super().progress(start + (end - start) * max(0.0, min(1.0, fraction)), f"{self.component}: {message}")


def run_per_component(pass_obj: "Pass", model: ModelRef, params: "PassParams", ctx: PassContext) -> ModelRef:
    components = model.components
    if not components:
        raise PassError(f"{pass_obj.name}: composite model {model.path} lists no components",
                        fix="point the workflow at SplitModel's output folder as it was written")
    entries: list[dict[str, Any]] = []
    attributes: dict[str, Any] = {}
    for index, component in enumerate(components):
        name = str(component.attributes["component_name"])
        ctx.progress(index / len(components), f"component {name}")
        fields = {field.name: getattr(ctx, field.name) for field in dataclasses.fields(ctx)}
        sub = _ComponentContext(**{**fields, "output_dir": ctx.output_dir / name, "work_dir": ctx.work_dir / name},
                                component=name, share=(index / len(components), (index + 1) / len(components)))
        sub.output_dir.mkdir(parents=True, exist_ok=True)
        sub.work_dir.mkdir(parents=True, exist_ok=True)
        output = pass_obj.run(component, params, sub)
        if output.kind != "onnx" or not output.model_file.is_relative_to(ctx.output_dir):
            raise PassError(f"{pass_obj.name} on component {name} did not write an ONNX model in its folder",
                            fix="run this pass before SplitModel")
        entries.append({"name": name, "onnx_file": str(output.model_file.relative_to(ctx.output_dir))})
        attributes = output.attributes
    ctx.progress(1.0, f"{len(entries)} components")
    attributes = {key: value for key, value in attributes.items() if key != "component_name"}
    return ModelRef(kind="composite", path=ctx.output_dir, onnx_file=entries[0]["onnx_file"],
                    attributes={**attributes, "components": entries})


def composite_in(folder: Path) -> ModelRef | None:
    """SplitModel's output read back from its folder: ``split_N.onnx`` files (or ``split_N/model.onnx`` where passes
    ran per split) and no ``model.onnx``; None for any other folder."""
    if not folder.is_dir() or (folder / "model.onnx").exists():
        return None
    pattern = re.compile(r"split_(\d+)")
    files = [path for path in folder.glob("split_*.onnx") if pattern.fullmatch(path.stem)]
    files = files or [path for path in folder.glob("split_*/model.onnx") if pattern.fullmatch(path.parent.name)]
    if not files:
        return None
    files.sort(key=lambda path: int(pattern.search(str(path.relative_to(folder))).group(1)))  # type: ignore[union-attr]
    components = [{"name": path.stem if path.parent == folder else path.parent.name,
                   "onnx_file": str(path.relative_to(folder))} for path in files]
    return ModelRef(kind="composite", path=folder, onnx_file=components[0]["onnx_file"],
                    attributes={"components": components})
