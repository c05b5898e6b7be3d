"""Files written once, whole: a reader never sees one half-written. And the data directory's
permissions: what Certcloud keeps there (secrets, key ring, CA key, the SQLite database) is
for the service's own user alone (directories 0700, files 0600)."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIRECTORY = 0o700
PRIVATE_FILE = 0o600


def tighten(path: Path, mode: int) -> None:
    """Drop every permission bit of ``path`` beyond ``mode`` (a no-op for a path this user
    does not own: an operator's shared directory is theirs to set)."""
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if current & ~mode and info.st_uid == os.getuid():
        os.chmod(path, current & mode)
        log.warning("tightened permissions", extra={
            "path": str(path), "was": oct(current), "now": oct(current & mode)})


def private_directory(path: Path) -> None:
    """Create ``path`` and its missing parents with mode 0700, or tighten an existing one."""
    missing: list[Path] = []
    candidate = path
    while not candidate.exists():
        missing.append(candidate)
        candidate = candidate.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir(mode=PRIVATE_DIRECTORY)
    tighten(path, PRIVATE_DIRECTORY)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing (an empty file is an empty SQLite
    database), or tighten it."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        tighten(path, PRIVATE_FILE)


def create_new(path: Path, text: str) -> None:
    """Write ``text`` to a private temporary file, then link it into place, so ``path``
    appears complete or not at all (mode 0600, in a directory made 0700).

    :raises FileExistsError: ``path`` exists (another process made it first).
    """
    private_directory(path.parent)
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
