"""Code shipped with a model runs only with the user's consent (--trust_remote_code / trust_remote_code keys).

Each model here is made at test time: an HF folder whose config.json names auto_map modules that append to
a marker file when imported, and a pickle that writes a marker when loaded. No marker may appear unless trusted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import make_context

from modelmill.cli import main
from modelmill.config import load_document, load_workflow
from modelmill.engine.model import ModelRef
from modelmill.engine.plan import plan_from_config
from modelmill.errors import PassError
from modelmill.passes.model_builder import ModelBuilder, ModelBuilderParams, builder_options
from modelmill.passes.onnx_conversion import OnnxConversion, OnnxConversionParams
from modelmill.remote_code import remote_code_modules

IO_CONFIG = {"input_names": ["x"], "input_shapes": [[1, 2]], "output_names": ["y"]}


def remote_model(root: Path) -> tuple[Path, Path]:
    """(folder, marker): importing either auto_map module appends its name to ``marker``."""
    folder, marker = root / "remote_model", root / "remote_code_ran.txt"
    folder.mkdir()
    config = {"model_type": "marker_remote", "architectures": ["MarkerForCausalLM"], "num_hidden_layers": 1,
              "vocab_size": 16, "auto_map": {"AutoConfig": "configuration_marker.MarkerConfig",
                                             "AutoModelForCausalLM": "modeling_marker.MarkerForCausalLM"}}
    (folder / "config.json").write_text(json.dumps(config))
    record = f"with open({str(marker)!r}, 'a') as f:\n    f.write(__name__ + '\\n')\n"
    (folder / "configuration_marker.py").write_text(
        record + "from transformers import PretrainedConfig\n\n\nclass MarkerConfig(PretrainedConfig):\n"
                 "    model_type = 'marker_remote'\n")
    (folder / "modeling_marker.py").write_text(record)
    return folder, marker


@pytest.fixture()
def modules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """transformers copies trusted modules here (not into the user's ~/.cache) in this process and in workers."""
    import transformers.dynamic_module_utils as dynamic

    cache = tmp_path / "hf_modules"
    monkeypatch.setattr(dynamic, "HF_MODULES_CACHE", str(cache))
    monkeypatch.setenv("HF_MODULES_CACHE", str(cache))
    return cache


def test_auto_map_modules_are_named(tmp_path: Path) -> None:
    folder, _ = remote_model(tmp_path)
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"auto_map": {"AutoTokenizer": ["tokenization_marker.MarkerTokenizer", None]}}))
    assert remote_code_modules(folder) == ["configuration_marker.py", "modeling_marker.py", "tokenization_marker.py"]
    assert remote_code_modules(tmp_path) == []


@pytest.mark.parametrize("extra_options", [{}, {"hf_remote": True}, {"hf_remote": "true"}])
def test_model_builder_refuses_untrusted_remote_code(tmp_path: Path, extra_options: dict) -> None:
    folder, marker = remote_model(tmp_path)
    with pytest.raises(PassError) as caught:
        ModelBuilder().run(ModelRef("hf", folder), ModelBuilderParams(precision="fp32", extra_options=extra_options),
                           make_context(tmp_path, "builder"))
    text = str(caught.value)
    assert "--trust_remote_code" in text and "load_kwargs.trust_remote_code" in text
    assert ("hf_remote" in text) if extra_options else ("configuration_marker.py" in text)
    assert not marker.exists()


def test_builder_options_carry_the_trust() -> None:
    assert builder_options(ModelBuilderParams(precision="fp32"))["hf_remote"] == "false"
    assert builder_options(ModelBuilderParams(precision="fp32"), trust_remote_code=True)["hf_remote"] == "true"


def test_onnx_conversion_refuses_untrusted_remote_code(tmp_path: Path) -> None:
    folder, marker = remote_model(tmp_path)
    with pytest.raises(PassError, match="--trust_remote_code"):
        OnnxConversion().run(ModelRef("hf", folder), OnnxConversionParams(), make_context(tmp_path, "refused"))
    assert not marker.exists()


@pytest.mark.slow  # imports transformers' model classes
def test_onnx_conversion_passes_the_trust_to_transformers(tmp_path: Path, modules_cache: Path) -> None:
    folder, marker = remote_model(tmp_path)
    # Trusted, transformers imports the folder's code (which then fails to define a model: that error is fine).
    trusted = ModelRef("hf", folder, attributes={"trust_remote_code": True})
    with pytest.raises(PassError) as caught:
        OnnxConversion().run(trusted, OnnxConversionParams(), make_context(tmp_path, "trusted"))
    assert "--trust_remote_code" not in str(caught.value)
    assert "configuration_marker" in marker.read_text()


def _pickle_with_payload(tmp_path: Path) -> tuple[Path, Path]:
    import torch

    marker = tmp_path / "unpickled.txt"

    class Payload:
        def __reduce__(self) -> tuple:
            return exec, (f"open({str(marker)!r}, 'w').close()",)

    path = tmp_path / "model.pt"
    torch.save({"model": Payload()}, path)
    return path, marker


def test_pytorch_model_is_not_unpickled_without_trust(tmp_path: Path) -> None:
    path, marker = _pickle_with_payload(tmp_path)
    model = ModelRef("pytorch", path, attributes={"io_config": IO_CONFIG})
    with pytest.raises(PassError) as caught:
        OnnxConversion().run(model, OnnxConversionParams(), make_context(tmp_path, "conversion"))
    assert "--trust_remote_code" in str(caught.value) and "model_attributes.trust_remote_code" in str(caught.value)
    assert not marker.exists()


def test_trusted_pytorch_module_loads_and_exports(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "linear.pt"
    torch.save(torch.nn.Linear(2, 3), path)
    model = ModelRef("pytorch", path, attributes={"io_config": IO_CONFIG, "trust_remote_code": True})
    out = OnnxConversion().run(model, OnnxConversionParams(), make_context(tmp_path, "conversion"))
    assert out.model_file.exists()


def _config(tmp_path: Path, model: Path, load_kwargs: dict | None = None, **builder: object) -> Path:
    input_model: dict = {"type": "HfModel", "model_path": str(model)}
    if load_kwargs is not None:
        input_model["load_kwargs"] = load_kwargs
    config = {"input_model": input_model, "passes": {"builder": {"type": "ModelBuilder", "precision": "fp32",
                                                                 **builder}},
              "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


def test_config_trust_reaches_the_input_model_only_when_set(tmp_path: Path) -> None:
    folder, _ = remote_model(tmp_path)
    plain = plan_from_config(load_workflow(load_document(_config(tmp_path, folder))))
    assert "trust_remote_code" not in plain.input_model.attributes  # cache keys of other models are unchanged
    trusted = plan_from_config(load_workflow(load_document(_config(tmp_path, folder, {"trust_remote_code": True}))))
    assert trusted.input_model.attributes["trust_remote_code"] is True


@pytest.mark.slow  # two worker processes
def test_run_refuses_without_the_flag_and_runs_with_it(tmp_path: Path, modules_cache: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    folder, marker = remote_model(tmp_path)
    config = _config(tmp_path, folder, extra_options={"hf_remote": True})
    assert main(["run", "--config", str(config)]) == 1
    assert "--trust_remote_code" in capsys.readouterr().err and not marker.exists()
    # With the flag the builder imports the folder's code (and then rejects the made-up architecture).
    assert main(["run", "--config", str(config), "--trust_remote_code"]) == 1
    assert "--trust_remote_code" not in capsys.readouterr().err
    assert "configuration_marker" in marker.read_text()
