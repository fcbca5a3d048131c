"""Getting an entry's upstream files into the cache, verified: from the mirror, upstream, or a user's copy."""

from __future__ import annotations

from pathlib import Path

from . import cache
from .atomic import copy_atomic
from ..errors import ManualDownloadRequired, OfflineError
from .hashes import check_digest, record_digest, recorded_digest, require_pin, sha256_file
from ..registry import Entry, Source


def source_urls(entry: Entry, source: Source) -> list[str]:
    """Where to fetch ``source`` from: ``<SSL_ZOO_MIRROR>/<name>/<file>`` when a mirror is set, else upstream."""
    base = cache.mirror_base()
    if base:
        return [f"{base}/{entry.name}/{source.filename}"]
    return [u for u in (source.url, *source.mirrors) if u]


def how_to_supply(entry: Entry, source: Source) -> str:
    """The one-line instruction for putting a file in place by hand."""
    return (f"download {source.url or source.filename} yourself and run "
            f"`ssl-zoo convert {entry.name} --from-file PATH`, or set SSL_ZOO_MIRROR to a folder or server "
            f"holding {entry.name}/{source.filename}")


def ensure_source(
    entry: Entry, source: Source, *, require_hashes: bool = False, progress: bool = True
) -> tuple[Path, str]:
    """The cached, verified copy of one upstream file of ``entry`` and its sha256, downloading it if needed.

    Args:
        entry: The registry entry.
        source: One of its sources.
        require_hashes: Refuse files whose sha256 is neither pinned nor recorded.
        progress: Show a progress bar (when stderr is a terminal and SSL_ZOO_QUIET is unset).

    Returns:
        The path of the verified file in the cache, and its sha256.

    Raises:
        ManualDownloadRequired: For user-supplied entries whose file is not in the cache.
        OfflineError: In offline mode when the file is not cached.
        ChecksumError: When the file's sha256 differs from the pinned or recorded one.
        DownloadError: When every URL failed.
    """
    what = f"{entry.name}/{source.filename}"
    recorded = recorded_digest(entry.name, source.filename)
    if require_hashes:
        require_pin(source, recorded, what)
    path = cache.download_path(entry.name, source.filename)
    digest = sha256_file(path) if path.is_file() else _download(entry, source, path, recorded, progress)
    check_digest(digest, source, recorded, what)
    record_digest(entry.name, source.filename, digest)
    return path, digest


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


def import_file(entry: Entry, source: Source, user_file: Path) -> tuple[Path, str]:
    """Copy a file the user already has into the cache, after checking it like a download; return path, sha256.

    Raises:
        FileNotFoundError: If ``user_file`` does not exist.
        ChecksumError: If it differs from the pinned or recorded sha256.
    """
    if not user_file.is_file():
        raise FileNotFoundError(f"{user_file} is not a file: give the path of the downloaded checkpoint")
    digest = sha256_file(user_file)
    check_digest(digest, source, recorded_digest(entry.name, source.filename), f"{user_file}")
    dest = cache.download_path(entry.name, source.filename)
    if dest.resolve() != user_file.resolve():
        copy_atomic(user_file, dest)
    record_digest(entry.name, source.filename, digest)
    return dest, digest
