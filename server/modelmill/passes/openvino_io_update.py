"""OpenVINOIoUpdate: names every input and output of an OpenVINO IR and optionally reshapes it to static shapes."""

from __future__ import annotations

import shutil
from typing import Any

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import openvino_common as ovc
from modelmill.passes.base import Pass, PassParams


class OpenVINOIoUpdateParams(ovc.UserScriptParams):
    extra_configs: dict[str, Any] | None = Field(None, description="Olive compatibility: accepted and unused, as "
                                                 "in Olive.")
    input_shapes: list[Any] | None = Field(
        None, description="With static: one shape per model input, e.g. [[1, 128], [1, 128]].")
    input_names: list[str] | None = Field(
        None, description="New names for the model inputs, one per input in order.")
    static: bool = Field(False, description="Reshape the model to input_shapes (required then); the output IR is "
                         "<name>_st, else <name>_dy.")
    reuse_cache: bool = Field(False, description="Olive compatibility: Olive rewrites the input folder in place; "
                              "ModelMill always writes a new folder and leaves its cache intact.")


class OpenVINOIoUpdate(Pass):
    name = "OpenVINOIoUpdate"
    description = ("Gives every input and output of an OpenVINO IR a name (input_<i>/output_<i> where it has none, or "
                   "input_names), and with static: true reshapes it to input_shapes, as the NPU and OpenVINOEncapsulation "
                   "need. The IR is saved as <name>_st (static) or <name>_dy. Needs modelmill[openvino].")
    Params = OpenVINOIoUpdateParams
    accepts = frozenset({"openvino"})
    required_packages = ("openvino",)
    install_hint = ovc.OPENVINO_EXTRA
    produces = "openvino"

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OpenVINOIoUpdateParams)
        params.refuse_scripts(self.name)
        ovc.require_openvino_model(model, self.name)
        self.require_packages()
        import openvino as ov

        loaded = ovc.read_ir(model)
        if params.input_names is not None and len(params.input_names) != len(loaded.inputs):
            raise PassError(f"input_names has {len(params.input_names)} names but the model has "
                            f"{len(loaded.inputs)} inputs", fix="give one name per model input, in order")
        renamed = False
        for i, port in enumerate(loaded.inputs):
            if params.input_names:
                loaded.input(i).set_names({params.input_names[i]})
                renamed = True
            if not loaded.input(i).get_names():
                loaded.input(i).set_names({f"input_{i}"})
                renamed = True
        for i, _ in enumerate(loaded.outputs):
            if not loaded.output(i).get_names():
                loaded.output(i).set_names({f"output_{i}"})
                renamed = True
        name = f"{ovc.model_name(model)}_{'st' if params.static else 'dy'}"
        ctx.output_dir.mkdir(parents=True, exist_ok=True)
        if params.static:
            if not params.input_shapes:
                raise PassError("static: true needs input_shapes", fix="set input_shapes, one shape per input")
            if len(params.input_shapes) != len(loaded.inputs):
                raise PassError(f"the model has {len(loaded.inputs)} inputs but input_shapes has "
                                f"{len(params.input_shapes)} entries", fix="give one shape per model input")
            loaded.reshape({loaded.input(i): ov.PartialShape(shape) for i, shape in enumerate(params.input_shapes)})
            ov.save_model(loaded, str(ctx.output_dir / f"{name}.xml"), compress_to_fp16=False)
        elif renamed:
            ov.save_model(loaded, str(ctx.output_dir / f"{name}.xml"), compress_to_fp16=False)
        else:
            shutil.copy2(model.model_file, ctx.output_dir / f"{name}.xml")
            shutil.copy2(model.model_file.with_suffix(".bin"), ctx.output_dir / f"{name}.bin")
        ctx.report("renamed_io", renamed)
        ovc.copy_companions(model, ctx.output_dir)
        return ovc.openvino_ref(ctx.output_dir, model.attributes)
