"""validate_document / load_workflow: every problem at once, at its place, with a useful hint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from config_helpers import CPU_ONLY, DATA
from modelmill.config import (
    Environment,
    format_report,
    load_document,
    load_workflow,
    parse_document,
    validate_document,
)
from modelmill.config.diagnostics import CODES
from modelmill.engine.context import Accelerator
from modelmill.errors import ConfigError
from modelmill.passes.registry import all_passes

TUTORIAL = DATA / "tutorial_config.json"


def _check(config: dict[str, Any], env: Environment = CPU_ONLY) -> tuple[str, list]:
    text = json.dumps(config, indent=2)
    return text, validate_document(parse_document(text, "config.json"), env)


def _by_code(diagnostics: list, code: str) -> list:
    return [d for d in diagnostics if d.code == code]


def _text_at(text: str, diag) -> str:
    return text[diag.range.start.offset:diag.range.end.offset]


def _flat(**extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": "sample:smollm2"},
        "systems": {"local_system": {"type": "LocalSystem", "accelerators": [
            {"device": "cpu", "execution_providers": ["CPUExecutionProvider"]}]}},
        "passes": {"conversion": {"type": "ModelBuilder", "precision": "int4"}},
        "target": "local_system",
        "output_dir": "out",
    }
    config.update(extra)
    return config


def _llama_folder(tmp_path: Path, model_type: str = "llama", arch: str = "LlamaForCausalLM") -> Path:
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": [arch]}))
    return folder


# ------------------------------------------------------------------ the tutorial


@pytest.mark.parametrize("name", ["tutorial_config.json", "tutorial_config.yaml"])
def test_tutorial_reports_exactly_what_it_deserves(name: str) -> None:
    doc = load_document(DATA / name)
    diagnostics = validate_document(doc, CPU_ONLY)
    assert [d for d in diagnostics if d.severity == "error"] == []
    found = sorted((d.severity, d.code, d.path) for d in diagnostics)
    assert found == sorted([
        ("hint", "old-schema", ("input_model", "config")),
        ("warning", "old-schema", ("input_model", "config", "hf_config")),
        ("warning", "hub-id-not-local", ("input_model", "config", "hf_config", "model_name")),
        ("hint", "old-schema", ("systems", "local_system", "config")),
        ("hint", "old-schema", ("passes", "conversion", "config")),
        ("warning", "redundant-pass", ("passes", "optimization")),
        ("hint", "old-schema", ("passes", "optimization", "config")),
        ("hint", "old-schema", ("engine",)),
        ("warning", "old-schema", ("engine", "search_strategy", "search_algorithm")),
    ])
    hub = _by_code(diagnostics, "hub-id-not-local")[0]
    assert "Qwen/Qwen2.5-0.5B-Instruct" in hub.message and "sample:smollm2" in (hub.hint or "")
    assert _by_code(diagnostics, "redundant-pass")[0].data == {"remove": True}
    assert all(d.data.get("migrate") for d in _by_code(diagnostics, "old-schema"))
    assert all(d.code in CODES for d in diagnostics)


def test_tutorial_yaml_and_json_report_the_same_places() -> None:
    json_doc, yaml_doc = load_document(TUTORIAL), load_document(DATA / "tutorial_config.yaml")
    json_diags, yaml_diags = validate_document(json_doc, CPU_ONLY), validate_document(yaml_doc, CPU_ONLY)
    assert [(d.code, d.path) for d in json_diags] == [(d.code, d.path) for d in yaml_diags]
    yaml_lines = yaml_doc.text.splitlines()
    for diag in yaml_diags:
        key = diag.path[-1]
        assert str(key) in yaml_lines[diag.range.start.line], (diag, yaml_lines[diag.range.start.line])
    search_algorithm = next(d for d in yaml_diags if d.path[-1] == "search_algorithm")
    assert search_algorithm.range.start.line == yaml_lines.index("    search_algorithm: tpe")


def test_tutorial_report_format() -> None:
    doc = load_document(TUTORIAL)
    report = format_report(validate_document(doc, CPU_ONLY), "tutorial_config.json")
    lines = report.splitlines()
    assert lines[-1] == "4 warnings, 5 hints"
    assert "tutorial_config.json:40:5: warning redundant-pass: pass 'optimization' (OrtTransformersOptimization)" \
        in report
    hub_line = next(i for i, line in enumerate(lines) if "hub-id-not-local" in line)
    assert lines[hub_line + 1].startswith("    hint: download it once (`huggingface-cli download Qwen/")
    assert lines[hub_line + 1].endswith("or try sample:smollm2, a small sample of the same kind")


def test_model_type_mismatch_on_a_local_llama(tmp_path: Path) -> None:
    config = json.loads(TUTORIAL.read_text())
    config["input_model"]["config"]["hf_config"]["model_name"] = str(_llama_folder(tmp_path))
    text, diagnostics = _check(config)
    assert _by_code(diagnostics, "hub-id-not-local") == []
    [mismatch] = _by_code(diagnostics, "model-type-mismatch")
    assert mismatch.severity == "warning"
    assert mismatch.path == ("passes", "optimization", "config", "model_type")
    assert _text_at(text, mismatch) == '"gpt2"'
    assert "LlamaForCausalLM" in mismatch.message and "llama" in mismatch.message


def test_model_type_checks_qwen2_and_accepts_a_matching_type(tmp_path: Path) -> None:
    folder = _llama_folder(tmp_path, "qwen2", "Qwen2ForCausalLM")
    passes = {"convert": {"type": "OnnxConversion"},
              "opt": {"type": "OrtTransformersOptimization", "model_type": "gpt2"}}
    config = _flat(passes=passes, input_model={"type": "HfModel", "model_path": str(folder)})
    assert len(_by_code(_check(config)[1], "model-type-mismatch")) == 1
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    assert _by_code(_check(config)[1], "model-type-mismatch") == []


# ------------------------------------------------------------------ passes


def test_unknown_pass_type_did_you_mean_at_the_type_value() -> None:
    text, diagnostics = _check(_flat(passes={"conversion": {"type": "ModelBuidler", "precision": "int4"}}))
    [diag] = [d for d in diagnostics if d.severity == "error"]
    assert diag.code == "unknown-pass-type"
    assert _text_at(text, diag) == '"ModelBuidler"'
    assert diag.hint == "did you mean 'ModelBuilder'?" and diag.data == {"replace_with": "ModelBuilder"}


def _block_size_param() -> tuple[str, str]:
    """A registered pass with a *block_size parameter (prefer one named exactly block_size)."""
    found = [(cls.name, field) for cls in all_passes().values() for field in cls.Params.model_fields
             if field.endswith("block_size")]
    return sorted(found, key=lambda item: item[1] != "block_size")[0]


def test_unknown_pass_param_did_you_mean() -> None:
    pass_type, field = _block_size_param()
    typo = field.replace("_", "")
    text, diagnostics = _check(_flat(passes={"p": {"type": pass_type, typo: 32}}))
    # Olive ignores a pass key it does not know (with a warning), so ModelMill warns too.
    [diag] = [d for d in diagnostics if d.code == "ignored-key"]
    assert diag.severity == "warning" and diag.path == ("passes", "p", typo)
    assert _text_at(text, diag) == f'"{typo}"'  # the key itself
    assert diag.hint == f"did you mean '{field}'?" and diag.data == {"replace_with": field}


def test_pass_param_type_and_enum_errors() -> None:
    passes = {"conversion": {"type": "modelbuilder", "precision": "int3", "int4_block_size": 48,
                             "exclude_embeds": "yes please"}}
    diagnostics = _check(_flat(passes=passes))[1]
    errors = {d.path[-1]: d for d in diagnostics if d.severity == "error"}
    assert errors["precision"].code == "unsupported-precision"
    assert "int4" in errors["precision"].hint
    assert errors["int4_block_size"].code == "invalid-value"
    assert "allowed: 16, 32, 64, 128, 256" in errors["int4_block_size"].hint
    assert errors["exclude_embeds"].code == "invalid-type"
    assert len([d for d in diagnostics if d.severity == "error"]) == 3


def test_search_values_need_search() -> None:
    passes = {"conversion": {"type": "ModelBuilder", "precision": ["int4", "int8"]}}
    diagnostics = _check(_flat(passes=passes))[1]
    [diag] = [d for d in diagnostics if d.severity == "error"]
    assert diag.code == "invalid-type" and "search_strategy" in diag.hint
    searched = _flat(passes={"conversion": {"type": "ModelBuilder", "precision": ["int4", "int9"]}},
                     search_strategy={"execution_order": "joint", "sampler": "sequential"},
                     evaluators={"e": {"metrics": [{"name": "l", "type": "latency", "sub_types": [{"name": "avg"}]}]}},
                     evaluator="e")
    [bad] = [d for d in _check(searched)[1] if d.severity == "error"]
    assert bad.path == ("passes", "conversion", "precision", 1)


def test_old_pass_name_is_migrated() -> None:
    name = next((alias, cls.name) for cls in all_passes().values() for alias in cls.aliases)
    passes = {"conversion": {"type": "ModelBuilder"}, "q": {"type": name[0]}}
    diagnostics = _check(_flat(passes=passes))[1]
    [note] = _by_code(diagnostics, "old-schema")
    assert note.severity == "warning" and note.data["replace_with"] == name[1]


def test_model_kind_mismatch() -> None:
    passes = {"quant": {"type": "OnnxDynamicQuantization"}}
    [diag] = [d for d in _check(_flat(passes=passes))[1] if d.severity == "error"]
    assert diag.code == "model-kind-mismatch" and "hf" in diag.message


def test_model_kind_mismatch_says_the_pass_own_fix() -> None:
    """QuarkQuantization runs Quark's ONNX quantizer only: a Hugging Face input is an error as the config is typed,
    with why (Quark-Torch) and what to do, not a failure when the run reaches it."""
    passes = {"quark": {"type": "QuarkQuantization"}}
    [diag] = [d for d in _check(_flat(passes=passes))[1] if d.code == "model-kind-mismatch"]
    assert diag.severity == "error" and "Quark-Torch" in (diag.hint or "") and "OnnxConversion" in (diag.hint or "")


# ------------------------------------------------------------------ systems and references


def test_ep_device_mismatch_and_not_installed() -> None:
    systems = {"local_system": {"type": "LocalSystem",
                                "accelerators": [{"device": "cpu", "execution_providers": ["CUDAExecutionProvider"]}]}}
    text, diagnostics = _check(_flat(systems=systems))
    [mismatch] = _by_code(diagnostics, "ep-device-mismatch")
    assert mismatch.severity == "warning" and _text_at(text, mismatch) == '"CUDAExecutionProvider"'
    assert mismatch.data == {"replace_with": "CPUExecutionProvider"}
    [missing] = _by_code(diagnostics, "ep-not-installed")
    assert missing.data == {"install": "onnxruntime-gpu"}
    gpu = Environment(frozenset({"CPUExecutionProvider", "CUDAExecutionProvider"}))
    assert _by_code(_check(_flat(systems=systems), gpu)[1], "ep-not-installed") == []


def test_accelerator_rules() -> None:
    systems = {"s": {"type": "LocalSystem", "accelerators": [
        {"device": "gpu", "execution_providers": ["CUDAExecutionProvider", "DmlExecutionProvider"]},
        {"device": "npu"}]}}
    diagnostics = _check(_flat(systems=systems, target="s"))[1]
    # Olive <= 0.9 looped over them; Olive 0.13 rejects them: read as one system per provider (old-schema)
    [old] = _by_code(diagnostics, "old-schema")
    assert old.severity == "warning" and "s_dml" in old.hint and "s_npu" in old.hint
    suffix = {"s": {"type": "LocalSystem", "accelerators": [{"execution_providers": ["CUDA"]}]}}
    [diag] = [d for d in _check(_flat(systems=suffix, target="s"))[1] if d.severity == "error"]
    assert "end in 'ExecutionProvider'" in diag.message


def test_undefined_references_list_defined_names() -> None:
    config = _flat(evaluator="common", host="remote", target="local_system",
                   evaluators={"common_evaluator": {"metrics": [
                       {"name": "acc", "type": "accuracy", "data_config": "wikitext",
                        "sub_types": [{"name": "accuracy_score"}]}]}},
                   data_configs=[{"name": "wiki_text", "type": "HuggingfaceContainer"}])
    config["passes"]["quant"] = {"type": "OnnxStaticQuantization", "data_config": "calib"}
    text, diagnostics = _check(config)
    refs = {d.path: d for d in _by_code(diagnostics, "undefined-reference")}
    assert set(refs) == {("evaluator",), ("host",), ("evaluators", "common_evaluator", "metrics", 0, "data_config"),
                         ("passes", "quant", "data_config")}
    assert refs[("evaluator",)].hint == "did you mean 'common_evaluator'?"
    assert refs[("host",)].hint == "defined systems: local_system"
    assert refs[("passes", "quant", "data_config")].hint == "defined data_configs: wiki_text"
    assert _text_at(text, refs[("host",)]) == '"remote"'
    assert [d for d in diagnostics if d.severity == "error" and d.code != "undefined-reference"] == []


def test_bad_enum_lists_allowed_values() -> None:
    config = _flat(search_strategy={"execution_order": "pass_by_pass", "sampler": "exhaustive"},
                   evaluators={"e": {"metrics": [{"name": "l", "type": "latency", "sub_types": [{"name": "p85"}]}]}},
                   evaluator="e")
    diagnostics = {d.path[-1]: d for d in _check(config)[1] if d.severity == "error"}
    assert diagnostics["execution_order"].hint.endswith("allowed: joint, pass-by-pass")
    assert diagnostics["execution_order"].data == {"replace_with": "pass-by-pass"}
    assert "sequential" in diagnostics["sampler"].hint and "max_samples" in diagnostics["sampler"].hint
    assert diagnostics["name"].message == "'p85' is not a latency sub type"
    assert "p50, p75, p90, p95, p99, p999" in diagnostics["name"].hint


def test_unknown_keys_and_types_at_every_level() -> None:
    config = _flat(cache_dirr="c", log_severity_level="INFO")
    config["input_model"]["trust_remote_code"] = True
    config["systems"]["local_system"]["type"] = "LocalSytem"
    diagnostics = {d.path: d for d in _check(config)[1]}
    assert diagnostics[("cache_dirr",)].hint == "did you mean 'cache_dir'?"
    assert "load_kwargs" in diagnostics[("input_model", "trust_remote_code")].hint
    assert diagnostics[("log_severity_level",)].code == "invalid-type"
    system_type = diagnostics[("systems", "local_system", "type")]
    assert system_type.message == "unknown system type 'LocalSytem'"
    assert system_type.data["replace_with"] == "LocalSystem"


def test_search_needs_an_evaluator_and_metric_priorities() -> None:
    config = _flat(search_strategy={"execution_order": "joint", "sampler": "tpe"},
                   evaluators={"e": {"metrics": [
                       {"name": "l", "type": "latency", "sub_types": [{"name": "avg"}, {"name": "p90"}]}]}})
    diagnostics = [d for d in _check(config)[1] if d.severity == "error"]
    assert {d.code for d in diagnostics} == {"missing-required", "metric-priority"}
    search = next(d for d in diagnostics if d.code == "missing-required")
    assert search.path == ("search_strategy",) and search.hint == 'add "evaluator": "e"'
    config["evaluators"]["e"]["metrics"][0]["sub_types"] = [{"name": "avg", "priority": 1},
                                                            {"name": "p90", "priority": 3}]
    [gap] = _by_code(_check(config)[1], "metric-priority")
    assert gap.path[-1] == "priority" and "1 to 2" in gap.message


def test_hub_id_and_sample_paths() -> None:
    hub = _check(_flat(input_model={"type": "HfModel", "model_path": "org/model"}))[1]
    assert [d.code for d in hub] == ["hub-id-not-local"]
    assert _check(_flat())[1] == []
    [bad] = _check(_flat(input_model={"type": "HfModel", "model_path": "sample:smollm"}))[1]
    assert bad.code == "invalid-value" and bad.data == {"replace_with": "sample:smollm2"}


# ------------------------------------------------------------------ broken text


def test_broken_json_mid_edit() -> None:
    text = ('{\n  "input_model": {"type": "HfModel", "model_path": "sample:smollm2"},\n'
            '  "passes": {\n    "conversion": {"type": "ModelBuidler"}\n    "q": {"type": "OnnxDynamicQuantization"\n'
            '  },\n  "output_dir": "x"\n')
    doc = parse_document(text, "config.json")
    diagnostics = validate_document(doc, CPU_ONLY)
    syntax = _by_code(diagnostics, "syntax")
    assert [(d.range.start.line, d.range.start.col) for d in syntax] == [(4, 4), (7, 0)]
    # the typo before the break is still found, at its place; nothing is reported past the break
    [typo] = _by_code(diagnostics, "unknown-pass-type")
    assert (typo.range.start.line, typo.range.start.col) == (3, 27)
    assert len(diagnostics) == 3
    assert doc.range_of(("input_model", "model_path")).start.line == 1


# ------------------------------------------------------------------ loading


def test_load_workflow_raises_with_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_flat(passes={"a": {"type": "ModelBuidler"}}, evaluator="nope"), indent=2))
    with pytest.raises(ConfigError) as info:
        load_workflow(path, env=CPU_ONLY)
    message = str(info.value)
    assert "2 errors" in message
    assert f"{path}:" in message and "unknown-pass-type" in message and "undefined-reference" in message


def test_load_workflow_tutorial() -> None:
    config = load_workflow(TUTORIAL, env=CPU_ONLY)
    assert config.input_model.type == "HfModel"
    assert config.input_model.model_path == "Qwen/Qwen2.5-0.5B-Instruct"
    assert config.input_model.task == "text-generation"
    assert config.output_dir == "models/optimized" and config.cache_dir == "cache"
    assert config.search_enabled and config.search_strategy.sampler == "tpe"
    assert config.target_accelerator() == Accelerator("cpu", "CPUExecutionProvider")
    chain = config.pass_chain()
    assert [(name, cls.name) for name, cls, _ in chain] == [("conversion", "ModelBuilder"),
                                                           ("optimization", "OrtTransformersOptimization")]
    assert chain[0][2].precision == "int4"
    assert {d.code for d in config.diagnostics} >= {"old-schema", "redundant-pass", "hub-id-not-local"}


def test_load_workflow_overrides() -> None:
    config = load_workflow(TUTORIAL, overrides={"output_dir": "elsewhere", "input_model.model_path": "sample:smollm2"},
                           env=CPU_ONLY)
    assert config.output_dir == "elsewhere" and config.input_model.model_path == "sample:smollm2"


@pytest.mark.parametrize(("accelerator", "expected"), [
    (None, Accelerator()),
    ({"device": "gpu"}, Accelerator("gpu", "CUDAExecutionProvider")),
    ({"execution_providers": ["DmlExecutionProvider"]}, Accelerator("gpu", "DmlExecutionProvider")),
    ({"execution_providers": ["QNNExecutionProvider"]}, Accelerator("npu", "QNNExecutionProvider")),
    ({"device": "cpu", "execution_providers": ["CUDAExecutionProvider"]}, Accelerator("cpu", "CPUExecutionProvider")),
])
def test_target_accelerator(accelerator: dict | None, expected: Accelerator) -> None:
    system: dict[str, Any] = {"type": "LocalSystem"}
    if accelerator is not None:
        system["accelerators"] = [accelerator]
    config = load_workflow(parse_document(json.dumps(_flat(systems={"local_system": system})), "c.json"),
                           env=Environment(frozenset(EP for EP in (expected.execution_provider,))))
    assert config.target_accelerator() == expected


@pytest.mark.parametrize("broken", ['    type: "OnnxDynamic\n', "    type: [OnnxDynamic\n",
                                    '    # the type:\n    type: "OnnxDynamic\n'])
def test_a_yaml_error_inside_a_value_does_not_blame_the_key_above(broken: str) -> None:
    """The recovery parses the text above the error on its own, where `q:` has no value; the text gives it one,
    so "q must be an object (got None)" would be a false error next to the real one."""
    text = "input_model:\n  type: HfModel\n  model_path: x\n  bad_key: 1\npasses:\n  q:\n" + broken
    found = validate_document(parse_document(text, "olive_config.yaml"), CPU_ONLY)
    assert not [d.message for d in found if d.path[:2] == ("passes", "q")]
    assert sorted(d.code for d in found) == ["path-not-found", "syntax", "unknown-key"]  # the ones above still are
