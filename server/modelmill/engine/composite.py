"""Passes on composite models: an ONNX → ONNX pass runs on each component, as Olive runs a pass that does not take
composite models. Each component's output goes to a subfolder named after it (``split_0/model.onnx`` ...)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError

if TYPE_CHECKING:
    from modelmill.passes.base import Pass, PassParams


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
        sub = replace(ctx, output_dir=ctx.output_dir / name, work_dir=ctx.work_dir / name)
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
