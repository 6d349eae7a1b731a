"""`modelmill validate --json` and the language server's published diagnostics agree: the same codes,
severities, messages and ranges on a set of configs (JSON and YAML, old forms, Olive-only passes, a line
with non-ASCII text, whose columns the server converts to UTF-16)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsp_helpers import DATA, diagnostics, open_document, server_config
from modelmill.testing.lsp_client import initialize_like_vscode
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
SETTINGS = {"diagnosticsDelayMs": 0}
_SEVERITY = {"error": 1, "warning": 2, "info": 3, "hint": 4}

_OLD_FORMS = {
    "azureml_client": {"subscription_id": "s"},
    "input_model": {"type": "HfModel", "model_path": "google-bert/bert-base-uncased", "task": "text-classification"},
    "systems": {"local": {"type": "LocalSystem", "accelerators": [
        {"device": "cpu", "execution_providers": ["CPUExecutionProvider", "OpenVINOExecutionProvider"]}]},
        "aml": {"type": "AzureML", "aml_compute": "c"}},
    "data_configs": [{"name": "glue", "type": "HuggingfaceContainer", "user_script": "missing.py",
                      "params_config": {"data_name": "glue", "batch_size": 2}}],
    "evaluators": {"e": {"metrics": [{"name": "acc", "type": "accuracy", "sub_types": [{"name": "accuracy_score"}],
                                      "user_config": {"dataloader_func": "f", "batch_size": 1, "extra": 1}}]}},
    "passes": {"q": {"type": "OnnxStaticQuantization", "dataloader_func": "calib", "data_dir": "data"},
               "g": {"type": "GptqQuantizer", "bits": 3, "group_size": "big", "not_a_param": 1},
               "x": {"type": "NoSuchPass"}},
    "search_strategy": {"execution_order": "joint", "sampler": "random", "num_samples": 2},
    "evaluator": "e", "target": "local", "host": "aml",
}
_YAML = """\
input_model:
  type: PyTorchModel
  model_path: stabilityai/stable-diffusion-2-1
  model_script: nope.py
passes:
  conv:
    type: OnnxConversion
    target_opset: "x"
  tune:
    type: OrtSessionParamsTuning
    execution_mode_list: [ORT_SEQUENTIAL]
outptu_dir: out
"""
_UNICODE = ('{\n  "workflow_id": "modèle-😀",  "input_model": {"type": "HfModel", "model_path": "ü/x"},\n'
            '  "passes": {"é": {"type": "OnnxDynamicQuantization", "per_chanel": true}}\n}\n')


@pytest.fixture(scope="module")
def configs(workspace: Path) -> list[Path]:
    folder = workspace / "parity"
    folder.mkdir(exist_ok=True)
    shutil.copy(DATA / "tutorial_config.json", folder / "tutorial_config.json")
    (folder / "old_forms.json").write_text(json.dumps(_OLD_FORMS, indent=2))
    (folder / "olive.yaml").write_text(_YAML)
    (folder / "unicode.json").write_text(_UNICODE, encoding="utf-8")
    return sorted(folder.iterdir())


@pytest_lsp.fixture(scope="module", config=server_config())
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize_like_vscode(lsp_client, workspace, SETTINGS)
    yield
    await lsp_client.shutdown_session()


def _utf16(line: str, column: int) -> int:
    return len(line[:column].encode("utf-16-le")) // 2


def _cli(path: Path) -> list[tuple]:
    done = subprocess.run([sys.executable, "-m", "modelmill", "validate", "--json", str(path)],
                          capture_output=True, text=True, timeout=120)
    lines = path.read_text(encoding="utf-8").split("\n")
    found = []
    for item in json.loads(done.stdout):
        start, end = item["range"]["start"], item["range"]["end"]
        message = f"{item['message']}\n{item['hint']}" if item["hint"] else item["message"]
        found.append((item["code"], _SEVERITY[item["severity"]], message,
                      (start["line"], _utf16(lines[start["line"]], start["character"]),
                       end["line"], _utf16(lines[end["line"]], end["character"]))))
    return sorted(found)


async def test_cli_json_and_published_diagnostics_agree(client: LanguageClient, configs: list[Path]) -> None:
    for path in configs:
        open_document(client, path.as_uri(), path.read_text(encoding="utf-8"),
                      "yaml" if path.suffix == ".yaml" else "json")
        published = await diagnostics(client, path.as_uri(), 1)
        server = sorted((d.code, int(d.severity), d.message,
                         (d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character))
                        for d in published)
        cli = _cli(path)
        assert cli, path.name  # every config here has findings
        assert server == cli, path.name
