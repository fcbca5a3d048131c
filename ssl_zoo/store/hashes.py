"""File digests, the registry's pins, and the hash lock file of first-observed digests.

An upstream file is trusted by sha256: the registry pins it where upstream publishes one (full digest, or the
prefix torchvision puts in its file names); otherwise the digest seen on first download is recorded in
``$SSL_ZOO_HOME/hashes.lock.json`` and every later copy must match it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import cache
from .atomic import write_text_atomic
from ..errors import ChecksumError, UnpinnedFileError
from ..registry import Source

CHUNK = 1 << 20


def hash_file(path: Path) -> tuple[int, hashlib._Hash]:
    """The size of the file at ``path`` and a running sha256 of its bytes (to resume hashing after them)."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    return hash_file(path)[1].hexdigest()


def check_digest(digest: str, source: Source, recorded: str | None, what: str) -> None:
    """Raise ``ChecksumError`` unless ``digest`` agrees with the pin and the recorded digest.

    Args:
        digest: The sha256 just computed.
        source: The registry source, which may pin a sha256 or a prefix.
        recorded: The digest first observed for this file (lock file), or None.
        what: A label for the message (entry and file name).
    """
    expected = source.sha256 or source.sha256_prefix or recorded
    if expected and not digest.startswith(expected):
        origin = "pinned in the registry" if source.pinned else f"recorded in {cache.hash_lock_path()}"
        raise ChecksumError(
            f"{what}: sha256 {digest[:16]}... does not match {expected[:16]}... ({origin}); the file is corrupt "
            "or changed upstream: delete it and pull again, or report it"
        )


def require_pin(source: Source, recorded: str | None, what: str) -> None:
    """Raise ``UnpinnedFileError`` if neither the registry nor the lock file knows the file's sha256."""
    if not source.pinned and recorded is None:
        raise UnpinnedFileError(
            f"{what} has no pinned or recorded sha256 and --require-hashes is on: pull it once without "
            "--require-hashes on a trusted machine, or add sha256 to its registry entry"
        )


def _read_lock() -> dict[str, str]:
    try:
        return json.loads(cache.hash_lock_path().read_text())
    except FileNotFoundError:
        return {}


def recorded_digest(name: str, filename: str) -> str | None:
    """The sha256 first observed for ``filename`` of entry ``name``, or None."""
    return _read_lock().get(f"{name}/{filename}")


def record_digest(name: str, filename: str, digest: str) -> None:
    """Record ``digest`` for a file the first time it is seen (atomically, under a lock)."""
    from filelock import FileLock

    path = cache.hash_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        table = _read_lock()
        table.setdefault(f"{name}/{filename}", digest)
        write_text_atomic(path, json.dumps(table, indent=1, sort_keys=True) + "\n")

