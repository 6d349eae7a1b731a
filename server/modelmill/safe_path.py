"""Keep the working folder off ``sys.path``.

``python -m modelmill`` puts the working folder first on ``sys.path``. In an editor that folder is the
user's workspace: a ``modelmill/`` package or an ``attr.py`` there would be imported instead of the real
ones, and run, without anyone trusting it. The extension starts Python with ``PYTHONSAFEPATH=1`` (Python
3.11+'s ``-P``) so that this never happens; this module is the second line for every other way to start
ModelMill (and for Python 3.10, which has no safe-path mode), applied before anything else is imported.
Child processes inherit it: multiprocessing passes this ``sys.path`` on, other children get the variable.
User scripts named by a config are imported by file path (``evaluate/custom.py``), not through this.
"""

from __future__ import annotations

import os
import sys


def drop_working_folder() -> None:
    os.environ["PYTHONSAFEPATH"] = "1"
    if getattr(sys.flags, "safe_path", False):  # Python 3.11+ started with -P or PYTHONSAFEPATH
        return
    here = os.getcwd()
    sys.path[:] = [entry for entry in sys.path if entry not in ("", ".") and os.path.abspath(entry) != here]
