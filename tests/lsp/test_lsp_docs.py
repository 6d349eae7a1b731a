"""The docs stay in step with the code: every diagnostic code has its section in docs/diagnostics.md, and
docs/lsp.md names every command, setting and custom notification the server has."""

from __future__ import annotations

import re

from lsp_helpers import REPO

from modelmill.config import CODES
from modelmill.lsp.capabilities import CAPABILITIES
from modelmill.lsp.settings import Settings

DIAGNOSTICS = (REPO / "docs" / "diagnostics.md").read_text()
LSP = (REPO / "docs" / "lsp.md").read_text()


def test_every_code_has_a_section_starting_with_its_meaning() -> None:
    sections = dict(re.findall(r"^### (\S+)\n\n(.+)$", DIAGNOSTICS, re.M))
    assert set(sections) == set(CODES)
    for code, meaning in CODES.items():
        assert sections[code] == meaning, code
    rows = re.findall(r"^\| \[(\S+)\]\(#\1\) \| (.+?) \|", DIAGNOSTICS, re.M)
    assert [code for code, _ in rows] == list(CODES)


def test_lsp_doc_names_every_command_setting_and_notification() -> None:
    for command in CAPABILITIES["executeCommandProvider"]["commands"]:
        assert f"`{command}`" in LSP, command
    settings = Settings.from_json({"configFilePatterns": [], "defaultDevice": "gpu", "defaultProvider": "X",
                                   "cacheDir": "c", "diagnosticsDelayMs": 0, "docsBaseUrl": "u"})
    for key in settings.raw:
        assert f"`{key}`" in LSP, key
    for method in ("modelmill/runEvent", "modelmill/setTrusted", "$/progress", "window/logMessage"):
        assert f"`{method}`" in LSP
