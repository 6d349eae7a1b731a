"""What the OpenVINO passes share: the optional-extra check, OpenVINO IR folders, the parameters Olive gives them all.

An ``openvino`` model (``ModelRef.kind == "openvino"``) is a folder with one IR (``<name>.xml`` + ``<name>.bin``,
named by ``ModelRef.onnx_file``) beside its companions: config.json, generation_config.json, tokenizer files and
the ``openvino_tokenizer``/``openvino_detokenizer`` IRs that openvino-genai reads. Olive's OpenVINOModelHandler
takes the same folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes.base import PassParams

OPENVINO_EXTRA = "pip install 'modelmill[openvino]'"
# Folders of openvino-genai's tokenizer IRs; they are companions, never the model itself.
TOKENIZER_DIRS = ("openvino_tokenizer", "openvino_detokenizer")
TOKENIZER_IRS = ("openvino_tokenizer", "openvino_detokenizer")


class UserScriptParams(PassParams):
    """Olive's user-script pair; ModelMill runs no user code, so only None is accepted."""

    user_script: str | None = Field(None, description="Olive's user script. ModelMill does not run user code: "
                                    "leave it unset.")
    script_dir: str | None = Field(None, description="Olive's script folder. ModelMill does not run user code: "
                                   "leave it unset.")

    function_params: ClassVar[tuple[str, ...]] = ()
    """The pass's other parameters that name a user function (refused as the user script is)."""

    def refuse_scripts(self, pass_name: str) -> None:
        """PassError when the user script or a ``function_params`` parameter is set (the run's preparation calls
        this for every pass, so user code is refused before any work)."""
        used = [name for name in ("user_script", "script_dir", *self.function_params) if getattr(self, name, None)]
        if used:
            raise PassError(f"{pass_name}: {', '.join(used)} name user code, which ModelMill does not run",
                            fix="remove them: calibration data comes from data_config (a local_dataset or a "
                                "DummyDataContainer), shapes from input_shapes")


def ir_files(folder: Path) -> list[Path]:
    """The model IRs in ``folder`` (tokenizer IRs excluded), sorted by name."""
    return sorted(p for p in folder.glob("*.xml") if p.stem not in TOKENIZER_IRS and p.with_suffix(".bin").exists())


def openvino_ref(folder: Path, attributes: dict[str, Any] | None = None) -> ModelRef:
    """The openvino model in ``folder``: its single IR (Olive's rule), or openvino_model.xml among several."""
    found = ir_files(folder)
    if not found:
        raise PassError(f"{folder} holds no OpenVINO IR (<name>.xml with <name>.bin)",
                        fix="point at the folder an OpenVINO conversion wrote")
    if len(found) > 1:
        main = [p for p in found if p.stem == "openvino_model"]
        if not main:
            raise PassError(f"{folder} holds several OpenVINO IRs ({', '.join(p.name for p in found)})",
                            fix="keep one model IR per folder, as Olive's OpenVINOModel requires")
        found = main
    return ModelRef(kind="openvino", path=folder, onnx_file=found[0].name, attributes=dict(attributes or {}))


def require_openvino_model(model: ModelRef, pass_name: str) -> None:
    if model.kind != "openvino":
        raise PassError(f"{pass_name} takes an OpenVINO IR, not a {model.kind} model",
                        fix="run OpenVINOConversion or OpenVINOOptimumConversion before it")


def model_name(model: ModelRef) -> str:
    """Olive's ``model_config['model_name']``: the IR's file stem."""
    return Path(model.onnx_file).stem


def copy_companions(model: ModelRef, out_dir: Path) -> None:
    """Copy the JSON/text files and the tokenizer IR folders beside an IR, as Olive's OpenVINO passes do."""
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = {"entry.json", "modelmill_run.json"}
    for item in model.path.iterdir():
        if item.is_file() and item.suffix in (".json", ".txt", ".model") and item.name not in skip:
            shutil.copy2(item, out_dir / item.name)
        elif item.is_file() and item.stem in TOKENIZER_IRS and item.suffix in (".xml", ".bin"):
            shutil.copy2(item, out_dir / item.name)
        elif item.is_dir() and item.name in TOKENIZER_DIRS:
            shutil.copytree(item, out_dir / item.name, dirs_exist_ok=True)


def save_ir(ov_model: Any, out_dir: Path, name: str, compress_to_fp16: bool = True) -> Path:
    """``openvino.save_model`` into ``out_dir/<name>.xml`` (and .bin)."""
    import openvino as ov

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.xml"
    ov.save_model(ov_model, str(target), compress_to_fp16=compress_to_fp16)
    return target


def read_ir(model: ModelRef) -> Any:
    import openvino as ov

    return ov.Core().read_model(str(model.model_file))
