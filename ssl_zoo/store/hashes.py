"""File digests, the registry's pins, and the hash lock file of first-observed digests.

An upstream file is trusted by sha256: the registry pins it where upstream publishes one (full digest, or the
prefix torchvision puts in its file names); otherwise the digest seen on the first download that converted
successfully is recorded in ``$SSL_ZOO_HOME/hashes.lock.json`` and every later copy must match it. Files of
user-supplied entries (each user's own training run) are never recorded: their digest goes into the model
folder's provenance instead.

Every byte that enters the cache goes through :func:`copy_hashing` (one loop: read, hash, write), and every
comparison of a digest with what is expected goes through :func:`match_digest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO

from . import cache
from .atomic import write_atomic, write_text_atomic
from ..errors import ChecksumError, UnpinnedFileError
from ..registry import Source

CHUNK = 1 << 20
PREFIX_GUARD = ("an 8-hex sha256 prefix (torchvision's file names) guards against truncation and corruption, "
                "not against a substituted file (a 32-bit prefix can be matched with ~2^32 tries)")
Pin = tuple[str | None, str]  # (expected digest or prefix, where the expectation comes from)


def file_chunks(stream: IO[bytes], size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of an open binary stream, ``size`` at a time."""
    return iter(lambda: stream.read(size), b"")


def copy_hashing(chunks: Iterable[bytes], out: BinaryIO | None = None, hasher: hashlib._Hash | None = None,
                 on_chunk: Callable[[int], object] | None = None,
                 write: Callable[[BinaryIO, bytes], object] | None = None) -> tuple[int, hashlib._Hash]:
    """The one loop that moves bytes into the cache: each chunk is hashed and written exactly once.

    Args:
        chunks: The bytes, in order.
        out: Where they go; None only hashes.
        hasher: A running sha256 to continue (a resumed download); a new one by default.
        on_chunk: Called with each chunk's length (a progress bar).
        write: ``write(out, chunk)``; ``out.write`` by default.

    Returns:
        The number of bytes and the sha256 of everything hashed (including what ``hasher`` held before).

    Example:
        >>> copy_hashing([b"ab", b"c"])[1].hexdigest() == hashlib.sha256(b"abc").hexdigest()
        True
    """
    hasher = hasher or hashlib.sha256()
    count = 0
    for chunk in chunks:
        if out is not None:
            write(out, chunk) if write else out.write(chunk)
        hasher.update(chunk)
        count += len(chunk)
        if on_chunk is not None:
            on_chunk(len(chunk))
    return count, hasher


def hash_file(path: Path) -> tuple[int, hashlib._Hash]:
    """The size of the file at ``path`` and a running sha256 of its bytes (to resume hashing after them)."""
    with open(path, "rb") as fh:
        return copy_hashing(file_chunks(fh))


def sha256_file(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    return hash_file(path)[1].hexdigest()


def copy_file(src: Path, dest: Path) -> str:
    """Copy ``src`` to ``dest`` atomically, reading it once; return the sha256 of exactly the bytes copied."""
    result: list[str] = []

    def write(fh: BinaryIO) -> None:
        with open(src, "rb") as fin:
            result.append(copy_hashing(file_chunks(fin), fh)[1].hexdigest())

    write_atomic(dest, write)
    return result[0]


def digest_matches(digest: str, expected: str | None) -> bool:
    """Whether ``digest`` agrees with ``expected`` (a full sha256 or a prefix; None or empty: nothing to agree with).

    Example:
        >>> digest_matches("ab" * 32, "abab"), digest_matches("ab" * 32, "ff")
        (True, False)
    """
    return not expected or digest.startswith(expected.lower())


def match_digest(digest: str, pins: Sequence[Pin], what: str) -> None:
    """The one digest check: ``digest`` must agree with every expectation given (full digest or prefix).

    Args:
        digest: The sha256 just computed (lower-case hex).
        pins: ``(expected, origin)`` pairs; an empty ``expected`` is skipped.
        what: The file or URL, for the message.

    Raises:
        ChecksumError: Naming both digests and where the expectation came from.

    Example:
        >>> match_digest("ab" * 32, [("abab", "pinned in the registry")], "x")
    """
    for expected, origin in pins:
        if not digest_matches(digest, expected):
            raise ChecksumError(f"{what}: sha256 {digest or '(none)'} does not match {expected} ({origin}); the file "
                                "is corrupt or changed upstream: delete it and pull again, try another mirror, "
                                "or report it")


def source_pins(source: Source, recorded: str | None) -> list[Pin]:
    """What a file of ``source`` must match: the registry's full pin alone, else its prefix and the record."""
    if source.sha256:
        return [(source.sha256, "pinned in the registry")]
    return [(source.sha256_prefix, "pinned in the registry as a sha256 prefix"),
            (recorded, f"recorded in {cache.hash_lock_path()}")]


def check_digest(digest: str, source: Source, recorded: str | None, what: str) -> None:
    """Raise ``ChecksumError`` unless ``digest`` agrees with the registry pin and the recorded digest."""
    match_digest(digest, source_pins(source, recorded), what)


def require_pin(source: Source, recorded: str | None, what: str) -> None:
    """Raise ``UnpinnedFileError`` unless a full sha256 (registry pin or recorded digest) is known for the file.

    A registry prefix alone is not enough: see :data:`PREFIX_GUARD`.
    """
    if source.sha256 or recorded:
        return
    why = f" ({PREFIX_GUARD})" if source.sha256_prefix else ""
    raise UnpinnedFileError(f"{what} has no full sha256 pinned or recorded and --require-hashes is on{why}: pull "
                            "it once without --require-hashes on a trusted machine and review `ssl-zoo hashes "
                            "export`, or add sha256 to its registry entry")


# --- the lock file of first-observed digests -----------------------------------------------------------------


def recorded_digests() -> dict[str, str]:
    """Every recorded digest, keyed ``"<entry>/<filename>"``."""
    try:
        return json.loads(cache.hash_lock_path().read_text())
    except FileNotFoundError:
        return {}


def recorded_digest(name: str, filename: str) -> str | None:
    """The sha256 first observed for ``filename`` of entry ``name``, or None."""
    return recorded_digests().get(f"{name}/{filename}")


def _update_lock(change: Callable[[dict[str, str]], object]) -> None:
    from filelock import FileLock

    path = cache.hash_lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        table = recorded_digests()
        change(table)
        write_text_atomic(path, json.dumps(table, indent=1, sort_keys=True) + "\n")


def record_digest(name: str, filename: str, digest: str) -> None:
    """Record ``digest`` for a file the first time it is seen (atomically, under a lock).

    Call it only once the file has converted: a file that is not a checkpoint must never be trusted.
    """
    _update_lock(lambda table: table.setdefault(f"{name}/{filename}", digest))


def forget_digests(name: str) -> list[str]:
    """Remove every recorded digest of entry ``name``; return the ``"<entry>/<filename>"`` keys removed."""
    removed: list[str] = []

    def drop(table: dict[str, str]) -> None:
        removed.extend(key for key in sorted(table) if key.split("/", 1)[0] == name)
        for key in removed:
            del table[key]

    _update_lock(drop)
    return removed
