"""pygls's own ``initialize`` answer for this server: the reference ``capabilities.CAPABILITIES`` is checked
against (tests/lsp/test_lsp_startup.py) and regenerated from (``python -m modelmill.lsp.capabilities_gen --write``).

Imports pygls and the whole server; nothing on the server's start-up path imports this module.
"""

from __future__ import annotations

from typing import Any


def compute(params: dict[str, Any]) -> dict[str, Any]:
    """pygls's own answer to ``initialize`` with these params, as JSON (imports pygls and the server)."""
    from lsprotocol import types
    from pygls.capabilities import ServerCapabilitiesBuilder

    from modelmill.lsp.server import create_server

    server = create_server()
    converter = server.protocol._converter
    client = converter.structure(params.get("capabilities") or {}, types.ClientCapabilities)
    encoding = ServerCapabilitiesBuilder.choose_position_encoding(client)
    manager = server.protocol.fm
    capabilities = ServerCapabilitiesBuilder(
        client, set({**manager.features, **manager.builtin_features}.keys()), manager.feature_options,
        list(manager.commands.keys()), server._text_document_sync_kind, server._notebook_document_sync,
        encoding).build()
    result = types.InitializeResult(capabilities=capabilities, server_info=server.protocol.server_info)
    return converter.unstructure(result)


def _write() -> None:  # pragma: no cover - a maintenance tool
    import json
    import pprint
    import re
    from pathlib import Path

    generated = compute({})["capabilities"]
    text = "CAPABILITIES: dict[str, Any] = " + pprint.pformat(json.loads(json.dumps(generated)), width=110,
                                                              sort_dicts=False) + "\n"
    path = Path(__file__).with_name("capabilities.py")
    source = path.read_text()
    source = re.sub(r"(# --- generated: begin\n).*?(# --- generated: end)", lambda m: m.group(1) + text + m.group(2),
                    source, flags=re.S)
    path.write_text(source)
    print(f"wrote {path}")


if __name__ == "__main__":  # pragma: no cover
    import sys

    if "--write" in sys.argv:
        _write()
    else:
        import json

        print(json.dumps(compute({}), indent=2))
