"""Files written once, whole: a reader never sees one half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def create_new(path: Path, text: str) -> None:
    """Write ``text`` to a private temporary file, then link it into place, so ``path``
    appears complete or not at all (mode 0600).

    :raises FileExistsError: ``path`` exists (another process made it first).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # atomic, and refuses an existing path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
