"""``python -m modelmill.lsp [--tcp PORT]``: the language server (same as ``modelmill lsp``)."""

import sys

from modelmill.lsp.launch import main

sys.exit(main())
