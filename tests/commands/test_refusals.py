"""Commands and flags that cannot work here end with a reason and a nonzero exit, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.cli import main


@pytest.mark.parametrize("argv, expected", [
    (["shared-cache", "--account", "a", "--container", "c"], "Azure"),
    (["configure-qualcomm-sdk", "--py_version", "3.8"], "Qualcomm"),
])
def test_unavailable_commands_say_what_they_need(argv: list[str], expected: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert expected in err and "fix:" in err


def test_azure_flags_are_refused_with_the_reason(tiny_llama_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--account_name", "acct"])
    err = capsys.readouterr().err
    assert code != 0 and "--account_name" in err and "Azure" in err
    assert not (tmp_path / "o").exists()


def test_quantize_olive_only_algorithm_names_the_pass(tiny_llama_dir: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["quantize", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--algorithm", "awq"])
    err = capsys.readouterr().err
    assert code != 0 and "AutoAWQQuantizer" in err


def test_disable_telemetry_is_accepted(tiny_llama_dir: Path, tmp_path: Path) -> None:
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--dry_run",
                 "--disable_telemetry"]) == 0


def test_auto_opt_fixed_shape_flags_add_olive_pass_and_run_refuses_it(
        tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"),
            "--dynamic-to-fixed-shape-dim-param", "batch_size", "--dynamic-to-fixed-shape-dim-value", "1"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert "DynamicToFixedShape" in err and not (tmp_path / "o").exists()


def test_run_list_required_packages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text('{"input_model": {"type": "HfModel", "model_path": "x"}, '
                      '"passes": {"b": {"type": "ModelBuilder"}, "g": {"type": "Gptq"}}}')
    assert main(["run", "--config", str(config), "--list_required_packages"]) == 0
    out = capsys.readouterr().out.split()
    assert "onnxruntime-genai" in out and "transformers" in out and len(out) > 4
