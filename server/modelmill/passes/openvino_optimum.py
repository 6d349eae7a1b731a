"""OpenVINOOptimumConversion: a Hugging Face folder → OpenVINO IR through optimum-intel, with NNCF weight compression.

As Olive does: ``optimum.exporters.openvino.main_export`` writes the IR (stateful KV cache for LLMs, plus the
openvino_tokenizer/openvino_detokenizer IRs openvino-genai needs), then optimum-intel's ``_main_quantize``
compresses the weights (``ov_quant_config``: weight_format int4/int8 with group_size, ratio, sym...). Nothing is
downloaded: the model is a local folder, and quantization options that need a Hub dataset are refused.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field

from modelmill.engine.context import PassContext
from modelmill.engine.model import ModelRef
from modelmill.errors import PassError
from modelmill.passes import openvino_common as ovc
from modelmill.passes.base import Pass, PassParams

LIBRARIES = ("transformers", "diffusers", "timm", "sentence_transformers", "open_clip")
FRAMEWORKS = ("pt", "tf")
WEIGHT_FORMATS = ("fp32", "fp16", "int8", "int4", "mxfp4", "nf4")
QUANT_MODES = ("int8", "f8e4m3", "f8e5m2", "nf4_f8e4m3", "nf4_f8e5m2", "int4_f8e4m3", "int4_f8e5m2")
# ov_quant_config keys of weight compression (Olive's no_compression_parameter_provided).
COMPRESSION_KEYS = ("ratio", "group_size", "sym", "all_layers", "dataset", "num_samples", "awq", "scale_estimation",
                    "gptq", "lora_correction", "sensitivity_metric", "backup_precision")
OPTIMUM_EXTRA = ("install optimum-intel in a separate environment (it pins transformers<5.6 and huggingface-hub<1.22): "
                 "see docs/openvino.md")


class OpenVINOOptimumConversionParams(ovc.UserScriptParams):
    components: list[str] | None = Field(
        None, description="Olive compatibility: component models to export; optimum-intel exports them all.")
    device: Literal["cpu", "gpu", "npu"] = Field("cpu", description="Device optimum-intel exports for.")
    extra_args: dict[str, Any] | None = Field(
        None, description="Keyword arguments for optimum.exporters.openvino.main_export, e.g. {\"task\": "
                          "\"text-generation-with-past\"}, plus Olive's library, framework, disable_stateful and "
                          "disable_convert_tokenizer.")
    ov_quant_config: dict[str, Any] | None = Field(
        None, description="optimum-intel quantization: {weight_format: int4|int8|fp16|..., group_size, ratio, sym, "
                          "all_layers, backup_precision...} compresses weights with NNCF; quant_mode (full "
                          "quantization) needs a Hub dataset and is refused here.")


class OpenVINOOptimumConversion(Pass):
    name = "OpenVINOOptimumConversion"
    description = ("Exports a Hugging Face folder to OpenVINO IR with optimum-intel (stateful KV cache for LLMs, "
                   "tokenizer IRs for openvino-genai) and, with ov_quant_config weight_format int4/int8, compresses "
                   "the weights with NNCF. The output runs in openvino-genai (modelmill chat) and the OpenVINO "
                   "runtime. Needs modelmill[openvino] plus optimum-intel (docs/openvino.md).")
    Params = OpenVINOOptimumConversionParams
    accepts = frozenset({"hf"})
    produces = "openvino"
    required_packages = ("openvino", "nncf", "optimum.intel")
    install_hint = f"{ovc.OPENVINO_EXTRA}, then {OPTIMUM_EXTRA}"
    supported_precisions = ("fp32", "fp16", "int8", "int4")

    def run(self, model: ModelRef, params: PassParams, ctx: PassContext) -> ModelRef:
        assert isinstance(params, OpenVINOOptimumConversionParams)
        params.refuse_scripts(self.name)
        self.require_packages()
        if model.adapter_dir is not None:
            raise PassError(f"{self.name} exports a whole model, not a LoRA adapter",
                            fix="merge the adapter first (finetune --merge) and convert the merged folder")
        extra = dict(params.extra_args or {})
        _check_choices(extra, params.ov_quant_config or {})
        from optimum.exporters.openvino import main_export
        from optimum.exporters.openvino.__main__ import _main_quantize

        source = str(model.path)
        library = extra.pop("library", None) or "transformers"
        task = extra.pop("task", None) or default_task(model.hf_config())
        ov_config = quantization_config(source, params.ov_quant_config, ctx.warn)
        quant = ov_config.quantization_config if ov_config is not None else None
        args: dict[str, Any] = {
            **extra,
            "device": params.device,
            "task": task,
            "ov_config": ov_config,
            "stateful": not extra.pop("disable_stateful", False),
            "convert_tokenizer": not extra.pop("disable_convert_tokenizer", False),
            "library_name": library,
        }
        args.pop("disable_stateful", None)
        args.pop("disable_convert_tokenizer", None)
        out = ctx.output_dir
        out.mkdir(parents=True, exist_ok=True)
        ctx.progress(0.1, f"exporting to OpenVINO IR ({task})")
        try:
            with _offline_tempdir(ctx.work_dir):
                main_export(source, str(out), **args)
                if quant is not None:
                    ctx.progress(0.6, f"compressing weights ({_describe(params.ov_quant_config or {})})")
                    _main_quantize(model_name_or_path=source, task=task, library_name=library,
                                   quantization_config=quant, output=out, cache_dir=None)
        except PassError:
            raise
        except Exception as exc:  # noqa: BLE001 - optimum raises many types
            if type(exc).__name__ == "InvalidGroupSizeError":  # nncf: a layer width the group size does not divide
                size = (params.ov_quant_config or {}).get("group_size")
                raise PassError(f"{self.name}: ov_quant_config.group_size {size} does not divide the input width of "
                                f"some layers (hidden_size {model.hf_config().get('hidden_size')}, "
                                f"intermediate_size {model.hf_config().get('intermediate_size')})",
                                fix="set ov_quant_config.group_size_fallback to \"adjust\" (those layers get the "
                                    "largest power-of-two group that divides them) or \"ignore\" (kept at the "
                                    "backup precision), or pick a group size that divides every width, e.g. 32"
                                ) from exc
            raise PassError(f"{self.name}: the OpenVINO export failed: {type(exc).__name__}: {exc}",
                            fix="set extra_args.task for this architecture, or check that optimum-intel supports "
                                "it") from exc
        precision = (params.ov_quant_config or {}).get("weight_format") or "fp32"
        ctx.report("task", task)
        ctx.report("weight_format", precision)
        return ovc.openvino_ref(out, {**model.attributes, "precision": precision})


def default_task(config: dict[str, Any]) -> str:
    """optimum's task for a local folder without asking the Hub: from config.json's architectures."""
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "text-generation-with-past"
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "text-classification"
    if any(a.endswith("ForMaskedLM") for a in architectures):
        return "fill-mask"
    return "feature-extraction"


def _check_choices(extra: dict[str, Any], quant: dict[str, Any]) -> None:
    """Olive's validate_config checks, as errors with the allowed values."""
    for key, value, allowed in (("extra_args.library", extra.get("library"), LIBRARIES),
                                ("extra_args.framework", extra.get("framework"), FRAMEWORKS),
                                ("ov_quant_config.weight_format", quant.get("weight_format"), WEIGHT_FORMATS),
                                ("ov_quant_config.quant_mode", quant.get("quant_mode"), QUANT_MODES)):
        if value is not None and value not in allowed:
            raise PassError(f"{key} {value!r} is not supported", fix=f"use one of {', '.join(allowed)}")
    if quant.get("backup_precision") is not None:
        import nncf

        allowed = tuple(mode.value for mode in nncf.BackupMode)
        if quant["backup_precision"] not in allowed:
            raise PassError(f"ov_quant_config.backup_precision {quant['backup_precision']!r} is not supported",
                            fix=f"use one of {', '.join(allowed)}")


def quantization_config(model_path: str, quant: dict[str, Any] | None,
                        warn: Callable[[str], None] | None = None) -> Any:
    """optimum-intel's OVConfig for ``ov_quant_config`` (Olive's rules), or None for a plain export. A Hub
    ``dataset`` is refused where NNCF would read it and left out (``warn`` says so) where it would not."""
    if not quant:
        return None
    from optimum.intel.openvino.configuration import (
        OVConfig,
        get_default_quantization_config,
    )

    weight_format, quant_mode = quant.get("weight_format"), quant.get("quant_mode")
    given = [key for key in COMPRESSION_KEYS if quant.get(key) is not None]
    if weight_format is None and quant_mode is None:
        if given:
            raise PassError(f"ov_quant_config sets {', '.join(given)} but no weight_format",
                            fix="add weight_format (int4 or int8) to ov_quant_config")
        return None
    if weight_format is not None and quant_mode is not None:
        raise PassError("ov_quant_config gives both weight_format and quant_mode", fix="keep only one of them")
    if quant_mode is not None:
        raise PassError(f"ov_quant_config.quant_mode {quant_mode!r} (full quantization) calibrates on a Hugging Face "
                        "Hub dataset, which ModelMill does not download",
                        fix="use weight_format int8/int4 here, or OpenVINOQuantization with a local data_config")
    if quant.get("dataset") is not None:
        readers = dataset_readers(quant)
        if readers:
            raise PassError(f"ov_quant_config.dataset {quant['dataset']!r} is a Hugging Face Hub dataset, which "
                            f"ModelMill does not download, and {', '.join(readers)} read{'s' if len(readers) == 1 else ''}"
                            " it", fix="remove dataset and those settings: data-free compression needs none")
        if warn is not None:  # Olive would download it for nothing: the compressed weights are the same without
            warn(f"ov_quant_config.dataset {quant['dataset']!r} is not downloaded: NNCF reads it only for AWQ, scale "
                 "estimation, GPTQ, LoRA correction or a mixed-precision ratio below 1, and these settings use none")
    if weight_format in ("fp16", "fp32"):
        return OVConfig(dtype=weight_format)
    config = _weight_compression(quant)
    if not any(quant.get(key) is not None for key in COMPRESSION_KEYS) and weight_format in ("int4", "int8"):
        default = get_default_quantization_config(model_path, weight_format, None)
        if default is not None:
            config = default
        elif weight_format == "int4":
            config = _default_int4()
    return OVConfig(quantization_config=config)


def dataset_readers(quant: dict[str, Any]) -> list[str]:
    """The ``ov_quant_config`` settings that make NNCF's weight compression read its dataset: AWQ, scale estimation,
    GPTQ, LoRA correction, and a ratio below 1 with a data-aware sensitivity metric (NNCF's WeightCompression
    ``_data_aware_compression`` / ``_data_aware_mixed_precision``); with none of them it never reads it."""
    readers = [key for key in ("awq", "scale_estimation", "gptq", "lora_correction") if quant.get(key)]
    ratio = 1.0 if quant.get("weight_format") == "int8" else (quant.get("ratio") or _default_int4().get("ratio"))
    if ratio != 1.0 and quant.get("sensitivity_metric") != "weight_quantization_error":
        readers.append(f"ratio {ratio} (data-aware mixed precision)")
    return readers


def _default_int4() -> dict[str, Any]:
    try:
        from optimum.intel.openvino.configuration import (
            _DEFAULT_4BIT_WQ_CONFIG as default,
        )
    except ImportError:  # older optimum-intel
        from optimum.intel.openvino.configuration import _DEFAULT_4BIT_CONFIG as default  # type: ignore[no-redef]
    return dict(default)


def _weight_compression(quant: dict[str, Any]) -> dict[str, Any]:
    """Olive's prep_wc_config: ov_quant_config → optimum-intel's weight quantization dict."""
    is_int8 = quant.get("weight_format") == "int8"
    return {
        "bits": 8 if is_int8 else 4,
        "ratio": 1.0 if is_int8 else (quant.get("ratio") or _default_int4().get("ratio")),
        "sym": quant.get("sym", False),
        "group_size": -1 if is_int8 else quant.get("group_size"),
        "all_layers": None if is_int8 else quant.get("all_layers", False),
        "dataset": None,
        "num_samples": quant.get("num_samples"),
        "quant_method": "default",
        "sensitivity_metric": quant.get("sensitivity_metric"),
        "scale_estimation": None,
        "gptq": None,
        "lora_correction": None,
        "dtype": quant.get("weight_format"),
        "backup_precision": quant.get("backup_precision"),
        "statistics_path": quant.get("statistics_path"),
        "group_size_fallback": quant.get("group_size_fallback"),
    }


def _describe(quant: dict[str, Any]) -> str:
    parts = [str(quant.get("weight_format"))]
    if quant.get("group_size"):
        parts.append(f"group size {quant['group_size']}")
    if quant.get("ratio"):
        parts.append(f"ratio {quant['ratio']}")
    return ", ".join(parts)


class _offline_tempdir:
    """No Hub access, and temporary files on the output's filesystem (optimum-intel renames across them)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.saved: dict[str, str | None] = {}
        self.saved_tempdir: str | None = None

    def __enter__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("TMPDIR", str(self.folder))):
            self.saved[key] = os.environ.get(key)
            os.environ[key] = value
        self.saved_tempdir = tempfile.tempdir
        tempfile.tempdir = str(self.folder)

    def __exit__(self, *exc: object) -> None:
        tempfile.tempdir = self.saved_tempdir
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
