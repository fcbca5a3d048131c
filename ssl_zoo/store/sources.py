"""Getting an entry's upstream files into the cache, verified: from the mirror, upstream, or a user's copy."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from . import cache
from ..errors import ManualDownloadRequired, OfflineError
from .hashes import check_digest, copy_file, record_digest, recorded_digest, require_pin, sha256_file
from ..registry import Entry, Source


class Fetched(NamedTuple):
    """One upstream file in the cache: where, its sha256, and whether a pin or a record vouched for it."""

    source: Source
    path: Path
    digest: str
    verified: bool


def source_urls(entry: Entry, source: Source) -> list[str]:
    """Where to fetch ``source`` from: ``<SSL_ZOO_MIRROR>/<name>/<file>`` when a mirror is set, else upstream."""
    base = cache.mirror_base()
    if base:
        return [f"{base}/{entry.name}/{source.filename}"]
    return [u for u in (source.url, *source.mirrors) if u]


def how_to_supply(entry: Entry, source: Source) -> str:
    """The one-line instruction for putting a file in place by hand (a metric network, not a registry entry,
    has no ``convert`` command: its file goes straight into the downloads cache, checked on use)."""
    from ..registry import all_entries

    by_hand = (f"run `ssl-zoo convert {entry.name} --from-file PATH`" if entry.name in all_entries()
               else f"put it at {cache.download_path(entry.name, source.filename)}")
    return (f"download {source.url or source.filename} yourself and {by_hand}, or set SSL_ZOO_MIRROR to a "
            f"folder or server holding {entry.name}/{source.filename}")


def trusted_digest(entry: Entry, source: Source) -> str | None:
    """The digest recorded for a file of ``entry``; None for user-supplied entries, whose files vary by run."""
    return None if entry.status == "user-supplied" else recorded_digest(entry.name, source.filename)


def remember(entry: Entry, fetched: Fetched) -> None:
    """Record a file's digest as first seen, once its conversion succeeded (never for user-supplied entries:
    their digest is in the model folder's provenance, and another training run is another file)."""
    if entry.status != "user-supplied":
        record_digest(entry.name, fetched.source.filename, fetched.digest)


def ensure_source(entry: Entry, source: Source, *, require_hashes: bool = False, progress: bool = True) -> Fetched:
    """The cached, verified copy of one upstream file of ``entry``, downloading it if needed.

    Nothing is recorded here: the caller records the digest with :func:`remember` once the file converted.

    Args:
        entry: The registry entry.
        source: One of its sources.
        require_hashes: Refuse files without a full sha256 pinned or recorded.
        progress: Show a progress bar (when stderr is a terminal and SSL_ZOO_QUIET is unset).

    Returns:
        The file, its sha256, and whether a pin or a record checked it.

    Raises:
        ManualDownloadRequired: For user-supplied entries whose file is not in the cache.
        OfflineError: In offline mode when the file is not cached.
        ChecksumError: When the file's sha256 differs from the pinned or recorded one.
        UnpinnedFileError: With ``require_hashes``, for a file without a full sha256.
        DownloadError: When every URL failed.
    """
    what = f"{entry.name}/{source.filename}"
    recorded = trusted_digest(entry, source)
    if require_hashes:
        require_pin(source, recorded, what)
    path = cache.download_path(entry.name, source.filename)
    digest = sha256_file(path) if path.is_file() else _download(entry, source, path, recorded, progress)
    check_digest(digest, source, recorded, what)
    return Fetched(source, path, digest, source.pinned or recorded is not None)


def _download(entry: Entry, source: Source, path: Path, recorded: str | None, progress: bool) -> str:
    from .download import fetch

    if entry.status == "user-supplied" and not cache.mirror_base():
        raise ManualDownloadRequired(f"{entry.name} has no public download: {entry.how_to_get}; then run "
                                     f"`ssl-zoo convert {entry.name} --from-file PATH`")
    urls = source_urls(entry, source)
    if cache.is_offline() and not all(u.startswith("file://") for u in urls):
        raise OfflineError(f"offline mode is on and {entry.name}/{source.filename} is not cached: "
                           + how_to_supply(entry, source))
    path.parent.mkdir(parents=True, exist_ok=True)
    return fetch(urls, path, sha256=source.sha256 or recorded, sha256_prefix=source.sha256_prefix,
                 progress=progress, label=f"{entry.name}: {source.filename}")


def user_files(entry: Entry, user_path: Path) -> list[tuple[Source, Path]]:
    """Pair a user's file (or folder) with the entry's sources; the checkpoint source comes first.

    A multi-file entry (a TF checkpoint: ``.index``, ``.data-…``, ``checkpoint`` …) accepts its folder or any
    of its files; the files beside it that the entry lists are taken too, those absent are skipped.
    """
    if len(entry.sources) == 1:
        return [(entry.checkpoint, user_path)]
    folder = user_path if user_path.is_dir() else user_path.parent
    first = [(entry.checkpoint, folder / entry.checkpoint.filename)]
    return first + [(s, folder / s.filename) for s in entry.sources[1:] if (folder / s.filename).is_file()]


@contextlib.contextmanager
def staged_user_files(entry: Entry, user_path: Path) -> Iterator[list[Fetched]]:
    """Copy a user's files into a staging folder (each read once, hashed as copied) and check them.

    The block converts the staged copies; only if it succeeds do they move into the downloads cache and (for
    entries with one true upstream) get their digests recorded. Otherwise nothing is kept or recorded.

    Raises:
        FileNotFoundError: If a file does not exist.
        ChecksumError: If a file differs from the pinned or recorded sha256.
    """
    staging = cache.staging_dir(entry.name, uuid.uuid4().hex[:8])
    staging.mkdir(parents=True)
    try:
        staged = [_stage(entry, source, file, staging) for source, file in user_files(entry, user_path)]
        yield staged
        for fetched in staged:
            dest = cache.download_path(entry.name, fetched.source.filename)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(fetched.path, dest)
            remember(entry, fetched._replace(path=dest))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _stage(entry: Entry, source: Source, user_file: Path, staging: Path) -> Fetched:
    if not user_file.is_file():
        raise FileNotFoundError(f"{user_file} is not a file: give the path of the downloaded checkpoint")
    staged = staging / source.filename
    digest = copy_file(user_file, staged)
    recorded = trusted_digest(entry, source)
    check_digest(digest, source, recorded, f"{user_file}")
    return Fetched(source, staged, digest, source.pinned or recorded is not None)
