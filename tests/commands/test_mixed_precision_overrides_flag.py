"""auto-opt --mixed-precision-overrides-config: Olive's TENSOR QUANT_TYPE pairs for its MixedPrecisionOverrides pass,
which Olive's auto-opt keeps only for QNNExecutionProvider (cli/auto_opt.py) and leaves out otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelmill.cli import main
from modelmill.commands.olive_compat import _mixed_precision_overrides


def test_with_cpu_the_flag_is_accepted_and_the_pass_left_out_as_in_olive(
        tiny_llama_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--dry_run",
                 "--mixed-precision-overrides-config", "/a/Softmax_output_0", "QUInt16"]) == 0
    captured = capsys.readouterr()
    config = json.loads(captured.out[captured.out.index("{"):])
    assert all(e["type"] != "MixedPrecisionOverrides" for e in config["passes"].values())
    assert "QNNExecutionProvider" in captured.err


def test_an_odd_number_of_entries_is_refused(tiny_llama_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auto-opt", "-m", str(tiny_llama_dir), "-o", str(tmp_path / "o"), "--dry_run",
                 "--mixed-precision-overrides-config", "a", "QUInt16", "b"]) != 0
    err = capsys.readouterr().err
    assert "--mixed-precision-overrides-config" in err and "even number" in err and "fix:" in err


def _qnn_config() -> dict:
    return {"systems": {"local_system": {"accelerators": [{"device": "npu",
                                                           "execution_providers": ["QNNExecutionProvider"]}]}},
            "passes": {"conversion": {"type": "OnnxConversion"}, "quant": {"type": "OnnxStaticQuantization"}}}


@pytest.mark.parametrize("items", [["a", "QUInt16", "b", "QInt8"], ["a=QUInt16", "b=QInt8"]])
def test_with_qnn_the_pass_goes_before_quantization_with_olives_dict(items: list[str]) -> None:
    config = _qnn_config()
    _mixed_precision_overrides(items, config)
    assert list(config["passes"]) == ["conversion", "mixed_precision_overrides", "quant"]
    assert config["passes"]["mixed_precision_overrides"] == {"type": "MixedPrecisionOverrides",
                                                             "overrides_config": {"a": "QUInt16", "b": "QInt8"}}


def test_with_qnn_an_unknown_quant_type_is_refused() -> None:
    from modelmill.errors import ConfigError

    with pytest.raises(ConfigError, match="QUInt16"):
        _mixed_precision_overrides(["a", "uint16"], _qnn_config())
