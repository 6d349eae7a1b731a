"""auto-opt --provider OpenVINOExecutionProvider: Olive 0.13's OpenVINO chain (config only; runs without openvino)."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmill.engine.autoopt import AutoOptRequest, build_config
from modelmill.errors import ConfigError

OV = "OpenVINOExecutionProvider"
CHAIN = ["OpenVINOOptimumConversion", "OpenVINOIoUpdate", "OpenVINOEncapsulation"]


def _request(**extra: object) -> AutoOptRequest:
    return AutoOptRequest(model="m", output_path="o", provider=OV, **extra)  # type: ignore[arg-type]


def _types(config: dict) -> list[str]:
    return [entry["type"] for entry in config["passes"].values()]


def test_llm_takes_the_openvino_chain(tiny_llama_dir: Path) -> None:
    config = build_config(_request(), tiny_llama_dir)
    assert _types(config) == CHAIN
    quant = config["passes"]["optimum_openvino_conversion"]["ov_quant_config"]
    # Olive's group size 128 and ratio 1, with NNCF's fallback for widths 128 does not divide (SmolLM2's 576)
    assert quant == {"weight_format": "int4", "group_size": 128, "ratio": 1.0, "group_size_fallback": "adjust"}
    assert config["passes"]["openvino_io_update"]["static"] is False
    assert config["passes"]["openvino_encapsulation"]["target_device"] == "cpu"
    assert config["systems"]["local_system"]["accelerators"] == [{"device": "cpu", "execution_providers": [OV]}]


@pytest.mark.parametrize("precision", ["int8", "fp16", "fp32"])
def test_encoder_takes_the_chain_with_the_precision_as_weight_format(tiny_bert_dir: Path, precision: str) -> None:
    config = build_config(_request(precision=precision), tiny_bert_dir)
    assert _types(config) == CHAIN
    assert config["passes"]["optimum_openvino_conversion"]["ov_quant_config"] == {"weight_format": precision}
    assert config["input_model"]["task"] == "feature-extraction"


def test_model_builder_and_adapters_are_refused(tiny_llama_dir: Path) -> None:
    with pytest.raises(ConfigError, match="use_model_builder"):
        build_config(_request(use_model_builder=True), tiny_llama_dir)
    with pytest.raises(ConfigError, match="LoRA adapter"):
        build_config(_request(adapter_path="adapter"), tiny_llama_dir)



def test_optimize_takes_the_same_chain(tiny_llama_dir: Path) -> None:
    from modelmill.cli import build_parser
    from modelmill.commands.optimize import build_config as optimize_config

    args = build_parser().parse_args(["optimize", "-m", str(tiny_llama_dir), "-o", "o", "--provider", OV,
                                      "--precision", "int4"])
    config = optimize_config(args)
    assert _types(config) == CHAIN
    assert config["passes"]["optimum_openvino_conversion"]["ov_quant_config"]["group_size"] == 128
    assert config["systems"]["local_system"]["accelerators"][0]["execution_providers"] == [OV]


def test_missing_provider_on_cpu_offers_the_cpu_provider() -> None:
    import importlib.util

    from modelmill.config.accelerators import installed_execution_providers
    from modelmill.engine.prepare import check_provider

    installed_execution_providers.cache_clear()
    if importlib.util.find_spec("openvino") is not None:
        pytest.skip("the OpenVINO extra is installed here, so the provider counts as available")
    with pytest.raises(ConfigError) as refused:
        check_provider(OV, "cpu")
    assert "modelmill[openvino]" in (refused.value.fix or "") and "CPUExecutionProvider" in (refused.value.fix or "")
