"""How a hint names this program, so that a command it prints works when copied as printed."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from functools import cache

NAME = "openprimary"


@cache
def program() -> str:
    """``openprimary`` when the shell finds this very script by that name, else the path it
    was started by (``.venv/bin/openprimary`` from a venv that is not activated)."""
    started = sys.argv[0] if sys.argv else ""
    if os.path.basename(started) != NAME:
        # python -m, the tests, another program embedding ours: the console script's name.
        return NAME
    found = shutil.which(NAME)
    try:
        if found and os.path.samefile(found, started):
            return NAME
    except OSError:
        return NAME
    return shlex.quote(started)
