"""The mail-merge file of voting codes: private, written whole, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO


def spreadsheet_safe(cell: str) -> str:
    """A cell a spreadsheet will show as text, never run as a formula (OWASP's rule: a cell
    that starts with = + - @, a tab or a carriage return gets a leading apostrophe)."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def write_codes_csv(rows: Iterable[tuple[str, str, str, str]], out: TextIO) -> int:
    """Write the mail-merge CSV: supporter_id,name,phone,code.  Returns the row count.

    The name comes from whoever signed up: it is made safe for a spreadsheet.
    The phone (E.164, ours) and the code (digits and dashes) are written as they are.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["supporter_id", "name", "phone", "code"])
    n = 0
    for sid, name, phone, code in rows:
        writer.writerow([spreadsheet_safe(sid), spreadsheet_safe(name), phone, code])
        n += 1
    return n


class PrivateFile:
    """A file only its owner can read, written whole or not at all: it holds live codes.

    It is written as a new temporary file (mode 0600, never an existing file
    or a symlink) beside the target, and renamed over it once complete.  It
    is opened when made, so a path that cannot be written fails before any
    code is issued.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
        self._tmp = Path(tmp)
        self._fh: TextIO = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def __enter__(self) -> TextIO:
        return self._fh

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._fh.close()
            if kind is None:
                os.replace(self._tmp, self.path)
        finally:
            if self._tmp.exists():
                self._tmp.unlink()
