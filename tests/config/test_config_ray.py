"""The `Ray` system: typed like every other system (schema, diagnostics), the plan's cluster, --ray-address,
and ray stays unimported until a run really uses a cluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from config_helpers import CPU_ONLY
from modelmill.config import load_workflow, parse_document, validate_document, workflow_json_schema
from modelmill.engine.plan import plan_from_config
from modelmill.errors import ConfigError


def _model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    return folder


def _config(tmp_path: Path, cluster: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "input_model": {"type": "HfModel", "model_path": str(_model(tmp_path))},
        "systems": {"cluster": {"type": "Ray", **(cluster or {})}},
        "host": "cluster",
        "passes": {"builder": {"type": "ModelBuilder", "precision": "int4"}},
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
    }
    config.update(extra)
    return config


def _diagnose(config: dict[str, Any]) -> tuple[str, list]:
    text = json.dumps(config, indent=2)
    return text, validate_document(parse_document(text, "config.json"), CPU_ONLY)


def _at(text: str, diag: Any) -> str:
    return text[diag.range.start.offset:diag.range.end.offset]


def test_a_ray_host_becomes_the_plans_cluster(tmp_path: Path) -> None:
    config = _config(tmp_path, {"type": "ray", "address": "ray://head.example:10001", "num_cpus": 2, "num_gpus": 0.5,
                                "memory": "8GB", "max_concurrent_candidates": 3, "max_retries": 1,
                                "candidate_timeout_s": 600})
    text, diagnostics = _diagnose(config)
    assert [d for d in diagnostics if d.severity in ("error", "warning")] == []
    plan = plan_from_config(load_workflow(parse_document(text, "config.json")))
    cluster = plan.cluster
    assert cluster is not None and cluster.name == "cluster" and cluster.address == "ray://head.example:10001"
    assert (cluster.num_cpus, cluster.num_gpus, cluster.memory, cluster.max_concurrent, cluster.max_retries,
            cluster.candidate_timeout_s, cluster.threads) == (2, 0.5, 8_000_000_000, 3, 1, 600, 2)
    assert plan.describe()["cluster"]["address"] == "ray://head.example:10001"


def test_without_a_ray_host_there_is_no_cluster(tmp_path: Path) -> None:
    config = _config(tmp_path)
    del config["host"]
    text, diagnostics = _diagnose(config)
    unused = [d for d in diagnostics if d.code == "unused-system"]
    assert len(unused) == 1 and _at(text, unused[0]) == '"cluster"' and unused[0].severity == "hint"
    assert plan_from_config(load_workflow(parse_document(text, "config.json"))).cluster is None


@pytest.mark.parametrize(("key", "value", "message"), [
    ("address", "head.example", "is not a Ray address"),
    ("num_cpus", 0, "greater than 0"),
    ("memory", "lots", "is not a size"),
    ("max_concurrent_candidates", 0, "greater than or equal to 1"),
    ("max_retries", -1, "greater than or equal to 0"),
    ("adress", "auto", "adress"),
])
def test_bad_ray_settings_are_errors_at_their_place(tmp_path: Path, key: str, value: Any, message: str) -> None:
    text, diagnostics = _diagnose(_config(tmp_path, {key: value}))
    errors = [d for d in diagnostics if d.severity == "error"]
    assert len(errors) == 1 and message in errors[0].message, errors
    assert errors[0].path[:2] == ("systems", "cluster")
    assert _at(text, errors[0]) in (json.dumps(value), f'"{key}"')
    with pytest.raises(ConfigError) as caught:
        load_workflow(parse_document(text, "config.json"))
    assert "config.json:" in str(caught.value)


def test_a_pass_level_ray_host_is_flagged(tmp_path: Path) -> None:
    config = _config(tmp_path, passes={"builder": {"type": "ModelBuilder", "precision": "int4", "host": "cluster"}})
    _, diagnostics = _diagnose(config)
    flagged = [d for d in diagnostics if d.path == ("passes", "builder", "host")]
    assert len(flagged) == 1 and flagged[0].severity == "warning" and "by itself" in flagged[0].message
    assert flagged[0].data.get("remove") is True


def test_the_schema_describes_the_ray_system() -> None:
    definition = workflow_json_schema()["definitions"]["RaySystem"]
    assert {"address", "num_cpus", "num_gpus", "memory", "max_concurrent_candidates", "max_retries",
            "candidate_timeout_s", "connect_timeout_s"} <= set(definition["properties"])
    assert "ray start" in definition["properties"]["address"]["description"]


def test_ray_address_flag_overrides_or_adds_the_host(tmp_path: Path) -> None:
    config = load_workflow(parse_document(json.dumps(_config(tmp_path, {"address": "auto"})), "c.json"))
    config.use_ray_cluster("10.0.0.5:6379")
    assert plan_from_config(config).cluster.address == "10.0.0.5:6379"
    plain = _config(tmp_path)
    del plain["systems"], plain["host"]
    config = load_workflow(parse_document(json.dumps(plain), "c.json"))
    config.use_ray_cluster("ray://head:10001")
    cluster = plan_from_config(config).cluster
    assert cluster is not None and cluster.name == "ray_cluster" and cluster.address == "ray://head:10001"
    with pytest.raises(ConfigError) as caught:
        config.use_ray_cluster("not an address")
    assert caught.value.where == "--ray-address" and "--ray-address auto" in caught.value.fix


def test_cli_ray_address_dry_run_and_bad_value(tmp_path: Path) -> None:
    plain = _config(tmp_path)
    del plain["systems"], plain["host"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(plain))
    command = [sys.executable, "-m", "modelmill", "run", "--config", str(path), "--dry_run"]
    done = subprocess.run([*command, "--ray-address", "127.0.0.1:6379"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "on Ray cluster 'ray_cluster' at 127.0.0.1:6379" in done.stderr
    bad = subprocess.run([*command, "--ray-address", "nowhere"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--ray-address: 'nowhere' is not a Ray address" in bad.stderr


def test_ray_is_not_imported_to_validate_or_plan(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_config(tmp_path, {"address": "auto"})))
    code = ("import sys; from modelmill.config import load_workflow; from modelmill.engine.plan import "
            "plan_from_config; import modelmill.cli; plan = plan_from_config(load_workflow(sys.argv[1])); "
            "assert plan.cluster is not None; print('ray' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
