"""Bytes for a URL into a path, safely; knows nothing about models.

``fetch`` streams into ``<dest>.partial`` next to ``dest`` while hashing, fsyncs, and renames into place,
so a ``dest`` that exists is always complete. An interrupted transfer leaves the ``.partial`` behind and the
next attempt (a retry, or a later process) resumes it with a ``Range`` request. An inter-process lock on
``<dest>.lock`` makes concurrent callers download once; the rename, not the lock, is what keeps it correct.

This module decides which URL to try and reports their failures as one error; ``store.transfer`` runs the
attempts of one http(s) URL (retries, resume, stall rules) and ``store.partial`` writes the ``.partial`` file.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

from ssl_zoo.errors import ChecksumError, DownloadError, NotACheckpointError, root_cause
from ssl_zoo.store.hashes import file_chunks, match_digest, sha256_file
from ssl_zoo.store.throughput import Pace
from ssl_zoo.store.partial import (CHUNK, Job, allow_downloads, finish, partial_path, progress_bar, stop_all,
                                   store_chunks)
from ssl_zoo.store.transfer import ADVICE, fetch_http

__all__ = ["allow_downloads", "fetch", "normalize_url", "stop_all"]
_HEX = re.compile(r"[0-9a-f]+")


def fetch(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    progress: bool = True,
    label: str | None = None,
    retries: int = 4,
    timeout: float = 30.0,
) -> str:
    """Download the first URL that works into ``dest``; return the sha256 hex digest of the file.

    Args:
        urls: http(s):// or file:// URLs of the same file, tried in order.
        dest: where the file goes; its folder is created. If it already exists it is verified, not fetched.
        sha256: the expected full hex digest.
        sha256_prefix: the expected first hex digits (at least 8), as torchvision pins them.
        progress: show a progress bar on stderr (see ``ssl_zoo.progress.shown``).
        label: the progress bar's description; the file name by default.
        retries: further attempts per URL after a connection error, timeout, 5xx or short read.
        timeout: seconds a connection may stay silent (at most; the stall budget below may cut it).

    A transfer also stops (keeping its ``.partial`` for the next call) when its rate stays below
    ``SSL_ZOO_MIN_RATE`` bytes/s (default 1024) for ``SSL_ZOO_RATE_WINDOW`` seconds (default 30), and retries
    stop once nothing arrived for ``SSL_ZOO_STALL_TIMEOUT`` seconds (default 45); see ``store.throughput``.

    Returns:
        The sha256 hex digest of ``dest``.

    Raises:
        DownloadError: no URL worked; the message names each URL and what went wrong.
        StalledDownloadError: the transfer was too slow or silent for too long; the partial file is kept.
        ChecksumError: the file does not match ``sha256``/``sha256_prefix``; nothing was kept.
        NotACheckpointError: the URL gave an HTML page (a login or confirmation page) instead of the file.
        DiskFullError: the disk filled up; the partial file was removed.
        ValueError: a malformed ``sha256``/``sha256_prefix``.
    """
    job = Job(Path(dest), _expected_digest(sha256, sha256_prefix), progress, label, max(retries, 0), timeout,
              Pace.from_env())
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(job.dest) + ".lock"):
        if job.dest.exists():  # another process may have finished it while we waited
            return _verify_existing(job)
        return _fetch_first(urls, job)


def normalize_url(url: str) -> str:
    """Make share links download the file: Dropbox gets ``dl=1``; other URLs are returned unchanged.

    Args:
        url: any URL.

    Returns:
        The URL to request.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host != "dropbox.com" and not host.endswith(".dropbox.com"):
        return url
    params = ["dl=1" if p.startswith("dl=") else p for p in parts.query.split("&") if p]
    if "dl=1" not in params:
        params.append("dl=1")
    return urlunsplit(parts._replace(query="&".join(params)))


def _expected_digest(sha256: str | None, prefix: str | None) -> str | None:
    """The lower-case digest (or prefix) to check against, after validating both arguments."""
    full, prefix = (sha256 or "").lower() or None, (prefix or "").lower() or None
    if full is not None and (len(full) != 64 or not _HEX.fullmatch(full)):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    if prefix is not None and not (8 <= len(prefix) <= 64 and _HEX.fullmatch(prefix)):
        raise ValueError(f"sha256_prefix must be 8 to 64 hex digits, got {prefix!r}")
    if full and prefix and not full.startswith(prefix):
        raise ValueError(f"sha256 {full} does not start with sha256_prefix {prefix}")
    return full or prefix


def _verify_existing(job: Job) -> str:
    """The digest of an already present ``dest``, which must match the expected one."""
    digest = sha256_file(job.dest)
    match_digest(digest, [(job.expected, "expected")], str(job.dest))
    return digest


def _fetch_first(urls: Sequence[str], job: Job) -> str:
    """Try each URL in turn; raise one error naming every failure if none worked."""
    failures: list[Exception] = []
    for url in urls:
        try:
            return _fetch_one(normalize_url(url), job)
        except (DownloadError, ChecksumError, NotACheckpointError) as exc:
            failures.append(exc)
    if not failures:
        raise DownloadError(f"no URL to download {job.dest.name} from: {ADVICE}")
    error = _give_up(job.dest, failures)
    if error is failures[-1]:
        raise error
    raise error from root_cause(failures[-1])


def _give_up(dest: Path, failures: list[Exception]) -> Exception:
    """One error for all failed URLs: of their common type, else ``DownloadError``."""
    kinds = {type(exc) for exc in failures}
    kind = kinds.pop() if len(kinds) == 1 else DownloadError
    if len(failures) == 1 and kind is not DownloadError:
        return failures[0]  # its message already names the URL and what to do
    tried = "; ".join(str(exc) for exc in failures)
    return kind(f"could not download {dest.name}: {tried}; {ADVICE}")


def _fetch_one(url: str, job: Job) -> str:
    """Fetch one URL (file://, or http(s) following one Google Drive confirmation page); return the file's digest."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return _copy_local(url, job)
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r}")
    return fetch_http(url, job)


def _copy_local(url: str, job: Job) -> str:
    """Copy a file:// URL into ``dest`` with the same hashing and atomic rename as a download."""
    source = Path(urllib.request.url2pathname(urlsplit(url).path))
    try:
        handle = open(source, "rb")  # noqa: SIM115 (closed by the `with` below; only opening is a URL failure)
    except OSError as exc:
        raise DownloadError(f"{url}: cannot read {source} ({exc.strerror})") from exc
    partial, hasher = partial_path(job.dest), hashlib.sha256()
    with handle, progress_bar(job, 0, os.fstat(handle.fileno()).st_size) as bar:
        store_chunks(file_chunks(handle, CHUNK), partial, 0, hasher, bar, job)
    return finish(partial, hasher.hexdigest(), url, job)

