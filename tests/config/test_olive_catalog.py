"""The Olive pass catalogue: names resolved as Olive resolves them, every Olive pass's parameters checked,
Olive's leniency, and ModelMill's own Params models compared with Olive's parameters."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
from config_helpers import CPU_ONLY
from modelmill.config import load_workflow, parse_document, validate_document
from modelmill.config.olive_catalog import all_olive_passes, find_olive_pass, params_model
from modelmill.errors import ConfigError
from modelmill.passes.registry import all_passes


def _check(passes: dict[str, Any], model_type: str = "HfModel", **extra: Any) -> list:
    config = {"input_model": {"type": model_type, "model_path": "sample:smollm2"}, "passes": passes,
              "output_dir": "out", **extra}
    return validate_document(parse_document(json.dumps(config, indent=2), "config.json"), CPU_ONLY)


def _codes(diagnostics: list, severity: str | None = None) -> set[str]:
    return {d.code for d in diagnostics if severity is None or d.severity == severity}


def test_catalogue_has_every_olive_pass_and_resolves_names_like_olive() -> None:
    passes = all_olive_passes()
    assert len(passes) >= 80 and "QuarkQuantization" in passes and "OnnxQuantization" in passes
    assert find_olive_pass("rtn").name == "Rtn" and find_olive_pass("GPTQ").name == "Gptq"
    assert find_olive_pass("olive.passes.onnx.quantization.OnnxQuantization").name == "OnnxQuantization"
    assert find_olive_pass("NoSuchPass") is None
    for name in all_passes():  # every pass ModelMill runs is an Olive pass
        assert find_olive_pass(name) is not None, name


def test_known_olive_pass_is_not_runnable_not_unknown() -> None:
    found = _check({"q": {"type": "OrtMixedPrecision", "op_block_list": ["SimplifiedLayerNormalization"]}},
                   "ONNXModel")
    [diag] = [d for d in found if d.code == "pass-not-runnable"]
    assert diag.severity == "warning" and diag.path == ("passes", "q", "type")
    assert "OrtMixedPrecision is an Olive pass" in diag.message
    assert "unknown-pass-type" not in _codes(found)
    compression = [d for d in _check({"q": {"type": "OpenVINOWeightCompression"}}) if d.code == "pass-not-runnable"]
    assert "openvino" in compression[0].message
    # ModelMill runs QuarkQuantization itself (modelmill[quark]) and the OpenVINO family (modelmill[openvino]):
    # where the extra is installed nothing is said; where it is not, an error names it (the run would stop there).
    for runnable, module, extra in (("QuarkQuantization", "quark", "modelmill[quark]"),
                                    ("OpenVINOConversion", "openvino", "modelmill[openvino]")):
        said = [d for d in _check({"q": {"type": runnable}}, "ONNXModel") if d.code == "pass-not-runnable"]
        if importlib.util.find_spec(module) is not None:
            assert said == []
        else:
            [missing] = said
            assert missing.severity == "error" and f"needs the {module} package" in missing.message
            assert extra in (missing.hint or "") and "Olive pass" not in missing.message


def test_unknown_pass_type_only_for_names_olive_lacks() -> None:
    [diag] = [d for d in _check({"q": {"type": "OnnxQuantizaton"}}, "ONNXModel") if d.code == "unknown-pass-type"]
    assert diag.data == {"replace_with": "OnnxQuantization"}


def test_catalogue_pass_values_checked_as_olive_does() -> None:
    passes = {"q": {"type": "AimetQuantization", "data_config": "d", "tie_kv_cache_io": "maybe", "precision": "int9",
                    "convert_attribute": 1, "quant_scheme": ["min_max", "tf_enhanced"],
                    "op_types_to_exclude": ["a"], "quant_schem": "min_max"}}
    found = _check(passes, "ONNXModel", data_configs=[{"name": "d", "type": "HuggingfaceContainer"}])
    errors = {d.path[-1]: d.code for d in found if d.severity == "error"}
    assert errors == {"tie_kv_cache_io": "invalid-type", "precision": "invalid-value"}
    [ignored] = [d for d in found if d.code == "ignored-key"]
    assert ignored.path[-1] == "quant_schem" and ignored.data == {"replace_with": "quant_scheme"}


def test_onnx_quantization_values_checked_as_a_modelmill_pass() -> None:
    passes = {"q": {"type": "OnnxQuantization", "quant_mode": "static", "per_channel": "maybe",
                    "precision": "int9", "weight_symmetric": 1, "nodes_to_exclude": ["a"],
                    "prepare_qdq_config": False, "quant_formatt": "QDQ"}}
    found = _check(passes, "ONNXModel")
    errors = {d.path[-1]: d.code for d in found if d.severity == "error"}
    assert errors == {"per_channel": "invalid-type", "precision": "unsupported-precision"}
    assert "pass-not-runnable" not in _codes(found)
    [ignored] = [d for d in found if d.code == "ignored-key"]  # prepare_qdq_config: Olive's, accepted
    assert ignored.path[-1] == "quant_formatt" and ignored.data == {"replace_with": "quant_format"}


def test_olive_leniency() -> None:
    accelerators = [{"device": "GPU", "execution_providers": ["CUDAExecutionProvider"]}]
    systems = {"s": {"type": "LocalSystem", "accelerators": accelerators}}
    passes = {"c": {"type": "OnnxConversion", "save_metadata_for_token_generation": True,
                    "merge_adapter_weights": False},
              "t": {"type": "OrtSessionParamsTuning", "execution_mode_list": [0, 1],
                    "execution_providers_list": ["CPUExecutionProvider"]}}
    found = _check(passes, systems=systems, target="s")
    assert _codes(found, "error") == set(), [d.message for d in found if d.severity == "error"]
    assert [d.path[-1] for d in found if d.code == "ignored-key"] == ["execution_providers_list"]


def test_a_value_only_modelmill_accepts_is_an_olive_incompatible_warning() -> None:
    named = _check({"t": {"type": "OrtSessionParamsTuning", "execution_mode_list": ["ORT_SEQUENTIAL"]}}, "ONNXModel")
    [warning] = [d for d in named if d.code == "olive-incompatible"]
    assert warning.severity == "warning" and warning.path[-1] == "execution_mode_list" and "int" in warning.message
    olive_form = _check({"t": {"type": "OrtSessionParamsTuning", "execution_mode_list": [0]}}, "ONNXModel")
    assert "olive-incompatible" not in _codes(olive_form)


def test_model_builder_metadata_only_takes_onnx() -> None:
    found = _check({"m": {"type": "ModelBuilder", "metadata_only": True}}, "ONNXModel")
    assert _codes(found, "error") == set()
    assert "pass-not-runnable" in _codes(found) and "redundant-pass" not in _codes(found)


def test_run_refuses_a_pass_it_cannot_run(tmp_path: Any) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"input_model": {"type": "ONNXModel", "model_path": "m.onnx"},
                                "passes": {"q": {"type": "OpenVINOWeightCompression"}}, "output_dir": "out"}))
    config = load_workflow(path, env=CPU_ONLY)
    with pytest.raises(ConfigError, match="OpenVINOWeightCompression is an Olive pass; ModelMill cannot run it"):
        config.pass_chain()


# Where a ModelMill Params field differs from Olive on purpose (ModelMill's type is wider, or its default is
# what ModelMill does), as (pass, parameter). Anything else that differs fails the test below.
MODELMILL_DIFFERS = {
    ("ModelBuilder", "precision"), ("ModelBuilder", "int4_block_size"), ("ModelBuilder", "int4_accuracy_level"),
    ("ModelBuilder", "int4_is_symmetric"), ("ModelBuilder", "int4_algo_config"), ("ModelBuilder", "exclude_embeds"),
    ("ModelBuilder", "exclude_lm_head"), ("ModelBuilder", "include_hidden_states"),
    ("ModelBuilder", "enable_cuda_graph"), ("ModelBuilder", "int4_nodes_to_exclude"),
    ("ModelBuilder", "extra_options"),
}


def _default(field: Any) -> Any:
    return field.default_factory() if field.default_factory is not None else field.default


def test_modelmill_params_against_the_catalogue() -> None:
    """Every Olive parameter of a pass ModelMill runs is accepted: modelled by its Params, or checked with
    Olive's type and left out of the run. Olive-typed values a Params model rejects are listed per pass."""
    report: dict[str, Any] = {}
    for name, cls in all_passes().items():
        olive = find_olive_pass(name)
        model = params_model(olive.name)
        own = cls.Params.model_fields
        added = sorted(set(own) - set(olive.params))  # ModelMill's additions
        not_modelled = sorted(set(olive.params) - set(own))
        differs = []
        for param, info in olive.params.items():
            if param not in own or (name, param) in MODELMILL_DIFFERS:
                continue
            default = info.get("default")
            if "default_expr" not in info and default is not None and _default(own[param]) != default:
                differs.append(f"{param} default {default!r} vs {_default(own[param])!r}")
        report[name] = {"added": added, "not_modelled": not_modelled, "differs": differs}
        assert set(model.model_fields) == set(olive.params)
    # Pinned so that a change to a Params model or to the catalogue is seen and decided on.
    assert report["ModelBuilder"]["not_modelled"] == sorted(
        {"metadata_only", "use_8bits_moe", "use_cuda_bf16", "use_qdq", "use_webgpu_fp32", "int4_op_types_to_quantize"}
        - set(all_passes()["ModelBuilder"].Params.model_fields))
    assert "execution_mode_list" not in report["OrtSessionParamsTuning"]["not_modelled"]
    print(json.dumps(report, indent=1))
