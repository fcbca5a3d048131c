"""Atomic writes: a temp file in the destination's folder, fsync, rename. A reader never sees half a file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from ..errors import OutputFolderError


def fsync_dir(path: Path) -> None:
    """Flush a directory entry so a rename inside it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Create ``path`` atomically with the bytes ``write(file)`` puts in the open binary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a lab's shared cache needs the user's umask
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting it, racing threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # no /proc (macOS): the brief set-and-restore is the only portable way
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_atomic(path, lambda fh: fh.write(text.encode()))


def copy_atomic(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` atomically, reading it once; return the sha256 of the bytes copied."""
    from .hashes import copy_file  # the one copy loop; hashes imports this module

    return copy_file(src, dest)


def check_output_folder(path: Path) -> Path:
    """``path``, checked to be usable as an output folder (missing, or a folder); nothing is created.

    Raises:
        OutputFolderError: ``path`` (or a parent) exists and is a file.
    """
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise OutputFolderError(f"{part} is a file, not a folder: give a folder path for the output")
    return path
