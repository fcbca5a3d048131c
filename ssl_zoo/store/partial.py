"""A download's ``<dest>.partial`` file: written in chunks while hashing (stoppable from another thread, a full
disk a ``DiskFullError``), then checked against the expected digest and renamed into place.

Both ways bytes arrive, an http(s) transfer (``store.transfer``) and a ``file://`` copy (``store.download``),
write through here, so a ``dest`` that exists is always complete.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from ssl_zoo.errors import ChecksumError, DiskFullError
from ssl_zoo.progress import byte_bar
from ssl_zoo.store.atomic import fsync_dir
from ssl_zoo.store.hashes import copy_hashing, match_digest
from ssl_zoo.store.throughput import Pace

CHUNK = 1 << 16
# Set by `stop_all` when the user presses Ctrl-C during a parallel pull: worker threads cannot receive
# KeyboardInterrupt themselves, so each checks this between chunks and stops, keeping its partial file.
_STOP = threading.Event()


@dataclass(frozen=True)
class Job:
    """What one ``fetch`` asks for, shared by every URL and attempt.

    Attributes:
        dest: Where the finished file goes (``<dest>.partial`` while it grows).
        expected: The lower-case sha256 or sha256 prefix to check, or None.
        progress: Whether to show a progress bar on stderr.
        label: The progress bar's description; the file name when None.
        retries: Further attempts per URL after a retryable failure.
        timeout: Seconds a connection may stay silent (at most; the stall budget may cut it).
        pace: The minimum-throughput and stall rules.
    """

    dest: Path
    expected: str | None
    progress: bool
    label: str | None
    retries: int
    timeout: float
    pace: Pace


def stop_all() -> None:
    """Make every download running in this process stop at its next chunk, keeping its partial file."""
    _STOP.set()


def allow_downloads() -> None:
    """Undo ``stop_all`` (called when a new batch of pulls starts)."""
    _STOP.clear()


def store_chunks(chunks: Iterator[bytes], partial: Path, offset: int, hasher: hashlib._Hash, bar: tqdm,
                 job: Job) -> int:
    """Write ``chunks`` to ``partial`` (appending after ``offset`` bytes), hashing them; return bytes written."""
    try:
        with open(partial, "ab" if offset else "wb") as out:
            written, _ = copy_hashing(_until_stopped(chunks), out, hasher, bar.update,
                                      lambda fh, chunk: _write_chunk(fh, chunk))
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        partial.unlink(missing_ok=True)
        raise DiskFullError(
            f"no space left writing {job.dest}: free space or point SSL_ZOO_HOME at a bigger disk"
        ) from exc
    return written


def _until_stopped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, ending with KeyboardInterrupt once ``stop_all`` was called (a worker thread's Ctrl-C)."""
    for chunk in chunks:
        if _STOP.is_set():
            raise KeyboardInterrupt
        yield chunk


def _write_chunk(out: BinaryIO, chunk: bytes) -> None:
    """The single place bytes hit the disk (tests replace it to simulate a full disk)."""
    out.write(chunk)


def finish(partial: Path, digest: str, url: str, job: Job) -> str:
    """Check the digest, then move the complete file into place and make the rename durable."""
    try:
        match_digest(digest, [(job.expected, "expected")], url)
    except ChecksumError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, job.dest)
    fsync_dir(job.dest.parent)
    return digest


def partial_path(dest: Path) -> Path:
    """Where the unfinished bytes of ``dest`` grow (and wait to be resumed)."""
    return dest.with_name(dest.name + ".partial")


def progress_bar(job: Job, initial: int, total: int | None) -> tqdm:
    """A byte-count bar on stderr, or a disabled one that only counts (``ssl_zoo.progress``)."""
    return byte_bar(progress=job.progress, desc=job.label or job.dest.name, total=total, initial=initial)
