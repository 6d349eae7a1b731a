"""ModelMill's language server (`modelmill lsp`): diagnostics, completion, hover, code actions and runs.

Importing this package is cheap: pygls, lsprotocol and the config layer load in
``modelmill.lsp.server``, which ``modelmill.lsp.launch`` imports while it answers ``initialize``.
"""
