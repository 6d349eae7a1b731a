"""``python -m modelmill.lsp [--tcp PORT]``: the language server (same as ``modelmill lsp``)."""

import sys

from modelmill.safe_path import drop_working_folder

drop_working_folder()  # first: the workspace's files must not shadow what the server imports next

from modelmill.lsp.launch import main  # noqa: E402

sys.exit(main())
