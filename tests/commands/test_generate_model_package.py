"""generate-model-package writes Olive 0.13's ORT model package: one component per genai_config role, one variant
per source, self-contained variant folders, overlays with the per-variant fields, a stripped base config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from modelmill.cli import main


def _onnx(path: Path, external: str | None = None, metadata: dict[str, str] | None = None) -> Path:
    """y = weight (a 4-float initializer), inline or in the external-data file ``external``."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path.parent.mkdir(parents=True, exist_ok=True)
    weight = numpy_helper.from_array(np.arange(4, dtype=np.float32), "weight")
    graph = helper.make_graph([helper.make_node("Identity", ["weight"], ["y"])], "g", [],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location=external, size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


def _source(root: Path, name: str, roles: dict[str, dict[str, Any]], **model_fields: Any) -> Path:
    """A GenAI-shaped output folder: genai_config.json, tokenizer files, ModelMill's run manifest, the ONNX files."""
    folder = root / name
    folder.mkdir(parents=True)
    for body in roles.values():
        files = [body["filename"]] if "filename" in body else \
            [stage_body["filename"] for stage in body["pipeline"] for stage_body in stage.values()]
        for index, filename in enumerate(files):
            _onnx(folder / filename, external=f"{Path(filename).name}.data" if index == 0 else None)
    (folder / "genai_config.json").write_text(json.dumps({"model": {**model_fields, **roles},
                                                          "search": {"max_length": 64}}))
    (folder / "tokenizer.json").write_text('{"version": "1.0"}')
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "modelmill_run.json").write_text(json.dumps({"execution_provider": "CPUExecutionProvider",
                                                           "files": {}}))
    return folder


def _decoder(provider: dict[str, Any] | None = None, filename: str = "model.onnx") -> dict[str, Any]:
    return {"filename": filename, "head_size": 16, "session_options": {
        "log_id": "onnxruntime-genai", "provider_options": [provider] if provider else []}}


def _json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_two_targets_become_variants_of_one_component(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    cpu = _source(tmp_path, "cpu_x64", {"decoder": _decoder()}, type="llama", context_length=2048,
                  eos_token_id=[2, 3], vocab_size=512)
    cuda = _source(tmp_path, "gpu", {"decoder": _decoder({"cuda": {"enable_cuda_graph": "0"}})}, type="llama",
                   context_length=4096, eos_token_id=[2, 3], vocab_size=512)
    assert main(["generate-model-package", "-s", str(cpu), "-s", str(cuda), "-o", str(tmp_path / "pkg"),
                 "--model_name", "tiny", "--model_version", "2.0"]) == 0
    pkg = tmp_path / "pkg.ortpackage"
    assert sorted(p.name for p in pkg.iterdir()) == ["configs", "manifest.json", "models"]
    manifest = _json(pkg / "manifest.json")
    assert manifest == {"schema_version": 1, "package_name": "tiny", "package_version": "2.0",
                        "components": ["decoder"], "configs_dir": "configs",
                        "producer": {"tool": "modelmill", "tool_version": manifest["producer"]["tool_version"],
                                     "model_name": "tiny", "model_version": "2.0", "task": "text_generation"}}
    assert _json(pkg / "models" / "decoder" / "metadata.json") == {
        "schema_version": 1, "component_name": "decoder",
        "variants": {"cpu_x64": {"ep": "CPUExecutionProvider"}, "gpu": {"ep": "CUDAExecutionProvider"}}}
    for variant, context in (("cpu_x64", 2048), ("gpu", 4096)):
        folder = pkg / "models" / "decoder" / variant
        assert sorted(p.name for p in folder.iterdir()) == ["genai_config_overlay.json", "model.onnx",
                                                            "model.onnx.data"]
        # self-contained: ORT loads the variant's file with its external data beside it
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        assert np.array_equal(session.run(None, {})[0], np.arange(4, dtype=np.float32))
        patch = _json(folder / "genai_config_overlay.json")["model"]
        assert patch["decoder"]["filename"] == "model.onnx" and patch["context_length"] == context
        assert patch["type"] == "llama" and patch["eos_token_id"] == [2, 3] and "vocab_size" not in patch
    gpu_options = _json(pkg / "models/decoder/gpu/genai_config_overlay.json")["model"]["decoder"]["session_options"]
    assert gpu_options["provider_options"] == [{"cuda": {"enable_cuda_graph": "0"}}]
    # configs/: the shared files; the base config without per-variant fields, each role pointing at its component
    assert sorted(p.name for p in (pkg / "configs").iterdir()) == ["genai_config.json", "tokenizer.json",
                                                                   "tokenizer_config.json"]
    base = _json(pkg / "configs" / "genai_config.json")
    assert base == {"model": {"vocab_size": 512, "decoder": {"head_size": 16, "component": "decoder"}},
                    "search": {"max_length": 64}}


def test_each_role_is_a_component_and_model_folders_stay_out_of_configs(tmp_path: Path) -> None:
    roles = {"vision": _decoder(filename="vision_encoder/model.onnx"),
             "embedding": _decoder(filename="embedding/model.onnx"),
             "decoder": _decoder(filename="decoder/model.onnx")}
    source = _source(tmp_path, "cpu", roles, context_length=128, bos_token_id=1)
    assert main(["generate-model-package", "-s", str(source), "-o", str(tmp_path / "vlm.ortpackage")]) == 0
    pkg = tmp_path / "vlm.ortpackage"
    assert _json(pkg / "manifest.json")["components"] == ["vision", "embedding", "decoder"]
    assert _json(pkg / "manifest.json")["package_name"] == "vlm"
    for role in roles:
        folder = pkg / "models" / role / "cpu"
        assert sorted(p.name for p in folder.iterdir()) == ["genai_config_overlay.json", "model.onnx",
                                                            "model.onnx.data"]
        patch = _json(folder / "genai_config_overlay.json")["model"]
        assert set(patch) == ({role, "context_length", "bos_token_id"} if role == "vision" else {role})
        assert patch[role]["filename"] == "model.onnx"
    assert not {"vision_encoder", "embedding", "decoder"} & {p.name for p in (pkg / "configs").iterdir()}
    base = _json(pkg / "configs" / "genai_config.json")["model"]
    assert {role: base[role]["component"] for role in roles} == {role: role for role in roles}
    assert "context_length" not in base and all("filename" not in base[role] for role in roles)


def test_pipeline_role_keeps_every_stage_and_its_ep(tmp_path: Path) -> None:
    pipeline = [{"embeddings": {"filename": "stages/embed.onnx"}},
                {"context": {"filename": "stages/ctx.onnx", "session_options": {
                    "provider_options": [{"qnn": {"backend_path": "QnnHtp.dll"}}]}}}]
    source = _source(tmp_path, "npu", {"decoder": {"pipeline": pipeline}})
    # the compatibility string is read from the role's first file, as in Olive
    _onnx(source / "stages" / "embed.onnx", external="embed.onnx.data",
          metadata={"ep_compatibility_info.QNNExecutionProvider": " soc_60,soc_73 "})
    (source / "stages" / "ctx_qnn.bin").write_bytes(b"context binary")  # an EPContext sidecar
    assert main(["generate-model-package", "-s", str(source), "-o", str(tmp_path / "p")]) == 0
    component = tmp_path / "p.ortpackage" / "models" / "decoder"
    assert _json(component / "metadata.json")["variants"] == {
        "npu": {"ep": "QNNExecutionProvider", "compatibility_string": "soc_60,soc_73"}}
    assert sorted(p.name for p in (component / "npu").iterdir()) == [
        "ctx.onnx", "ctx_qnn.bin", "embed.onnx", "embed.onnx.data", "genai_config_overlay.json"]
    patch = _json(component / "npu" / "genai_config_overlay.json")["model"]["decoder"]
    assert [next(iter(stage.values()))["filename"] for stage in patch["pipeline"]] == ["embed.onnx", "ctx.onnx"]
    assert "pipeline" not in _json(tmp_path / "p.ortpackage" / "configs" / "genai_config.json")["model"]["decoder"]


def test_onnx_output_without_genai_config_is_one_model_component(tiny_llama_onnx, tmp_path: Path) -> None:
    """A ModelMill extension (Olive needs genai_config.json): the provider comes from the run manifest."""
    import shutil

    source = tmp_path / "cuda_build"
    shutil.copytree(tiny_llama_onnx.path, source)
    (source / "modelmill_run.json").write_text(json.dumps({"execution_provider": "CUDAExecutionProvider"}))
    assert main(["generate-model-package", "-s", str(source), "-o", str(tmp_path / "plain")]) == 0
    pkg = tmp_path / "plain.ortpackage"
    assert _json(pkg / "manifest.json")["components"] == ["model"]
    assert "task" not in _json(pkg / "manifest.json")["producer"]
    assert _json(pkg / "models/model/metadata.json")["variants"] == {"cuda_build": {"ep": "CUDAExecutionProvider"}}
    files = {p.name for p in (pkg / "models/model/cuda_build").iterdir()}
    assert {"model.onnx", "genai_config_overlay.json"} <= files
    assert _json(pkg / "models/model/cuda_build/genai_config_overlay.json") == {"model": {"model": {
        "filename": "model.onnx", "session_options": {"provider_options": [{"cuda": {}}]}}}}
    assert "modelmill_run.json" not in {p.name for p in (pkg / "configs").iterdir()}
    assert "config.json" in {p.name for p in (pkg / "configs").iterdir()}


@pytest.mark.parametrize("problem, message", [
    ("same_name", "share the folder name"),
    ("traversal", "not a safe relative path"),
    ("missing_file", "which is missing"),
    ("empty", "neither genai_config.json nor an ONNX model"),
    ("no_roles", "no role with a filename"),
])
def test_bad_sources_are_refused_and_nothing_is_written(problem: str, message: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    sources = [_source(tmp_path, "cpu", {"decoder": _decoder()})]
    if problem == "same_name":
        sources.append(_source(tmp_path / "other", "cpu", {"decoder": _decoder()}))
    elif problem == "traversal":
        sources = [_source(tmp_path, "bad", {"decoder": _decoder()})]
        (sources[0] / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "../x.onnx"}}}))
    elif problem == "missing_file":
        (sources[0] / "model.onnx").unlink()
    elif problem == "empty":
        (tmp_path / "empty").mkdir()
        sources = [tmp_path / "empty"]
    elif problem == "no_roles":
        (sources[0] / "genai_config.json").write_text(json.dumps({"model": {"vocab_size": 3}}))
    args = [arg for source in sources for arg in ("-s", str(source))]
    assert main(["generate-model-package", *args, "-o", str(tmp_path / "out")]) != 0
    err = capsys.readouterr().err
    assert message in err and "--source" in err
    assert not (tmp_path / "out.ortpackage").exists() and not list(tmp_path.glob(".out.ortpackage*"))


def test_safe_relative_paths() -> None:
    from modelmill.commands.generate_model_package import is_safe_relative

    for bad in ("", "/abs/model.onnx", "..\\up.onnx", "a/../../b.onnx", "C:\\model.onnx", "C:model.onnx"):
        assert not is_safe_relative(bad), bad
    for good in ("model.onnx", "decoder/model.onnx", "a\\b.onnx"):
        assert is_safe_relative(good), good
