"""Bytes for a URL into a path, safely; knows nothing about models.

``fetch`` streams into ``<dest>.partial`` next to ``dest`` while hashing, fsyncs, and renames into place,
so a ``dest`` that exists is always complete. An interrupted transfer leaves the ``.partial`` behind and the
next attempt (a retry, or a later process) resumes it with a ``Range`` request. An inter-process lock on
``<dest>.lock`` makes concurrent callers download once; the rename, not the lock, is what keeps it correct.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import itertools
import os
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock
from tqdm import tqdm

from ssl_zoo import __version__
from ssl_zoo.progress import byte_bar
from ssl_zoo.store import cache
from ssl_zoo.store.atomic import fsync_dir
from ssl_zoo.errors import ChecksumError, DiskFullError, DownloadError, NotACheckpointError, root_cause
from ssl_zoo.store.hashes import copy_hashing, digest_matches, file_chunks, hash_file, match_digest, sha256_file
from ssl_zoo.store.throughput import Pace, Watch
from ssl_zoo.store.webpages import confirm_url, looks_like_html

CHUNK = 1 << 16
RETRY_BASE_DELAY = 0.5  # seconds before the first retry; doubled for each further one
MAX_PAGE = 1 << 20  # bytes of an HTML page read to look for a download confirmation
_HEX = re.compile(r"[0-9a-f]+")
# Set by `stop_all` when the user presses Ctrl-C during a parallel pull: worker threads cannot receive
# KeyboardInterrupt themselves, so each checks this between chunks and stops, keeping its partial file.
_STOP = threading.Event()
_ADVICE = f"check the network or set {cache.MIRROR_ENV} / use `ssl-zoo convert NAME --from-file FILE`"


@dataclass(frozen=True)
class _Job:
    dest: Path
    expected: str | None  # lower-case sha256 or sha256 prefix
    progress: bool
    label: str | None
    retries: int
    timeout: float
    pace: Pace


class _TransientError(Exception):
    """A failure worth retrying: the bytes already on disk are kept and resumed."""


class _HtmlPageError(Exception):
    """The server answered a web page instead of the file; args: (page text, page URL)."""


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
    job = _Job(Path(dest), _expected_digest(sha256, sha256_prefix), progress, label, max(retries, 0), timeout,
               Pace.from_env())
    job.dest.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(job.dest) + ".lock"):
        if job.dest.exists():  # another process may have finished it while we waited
            return _verify_existing(job)
        return _fetch_first(urls, job)


def stop_all() -> None:
    """Make every download running in this process stop at its next chunk, keeping its partial file."""
    _STOP.set()


def allow_downloads() -> None:
    """Undo ``stop_all`` (called when a new batch of pulls starts)."""
    _STOP.clear()


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


def _verify_existing(job: _Job) -> str:
    """The digest of an already present ``dest``, which must match the expected one."""
    digest = sha256_file(job.dest)
    match_digest(digest, [(job.expected, "expected")], str(job.dest))
    return digest


def _fetch_first(urls: Sequence[str], job: _Job) -> str:
    """Try each URL in turn; raise one error naming every failure if none worked."""
    failures: list[Exception] = []
    for url in urls:
        try:
            return _fetch_one(normalize_url(url), job)
        except (DownloadError, ChecksumError, NotACheckpointError) as exc:
            failures.append(exc)
    if not failures:
        raise DownloadError(f"no URL to download {job.dest.name} from: {_ADVICE}")
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
    return kind(f"could not download {dest.name}: {tried}; {_ADVICE}")


def _fetch_one(url: str, job: _Job) -> str:
    """Fetch one URL (following one Google Drive confirmation page) and return the file's digest."""
    scheme = urlsplit(url).scheme
    if scheme == "file":
        return _copy_local(url, job)
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: unsupported URL scheme {scheme!r}")
    try:
        return _download(url, job)
    except _HtmlPageError as page:
        confirmed = confirm_url(*page.args)
    if confirmed is None:
        raise _not_a_file(url)
    try:
        return _download(confirmed, job)
    except _HtmlPageError:
        raise _not_a_file(url) from None


def _not_a_file(url: str) -> NotACheckpointError:
    return NotACheckpointError(
        f"got an HTML page instead of the file from {url}: the link needs a browser or login; "
        "download it by hand and run `ssl-zoo convert NAME --from-file FILE`"
    )


def _download(url: str, job: _Job) -> str:
    """Attempt an HTTP download ``1 + job.retries`` times, backing off exponentially in between, while the
    stall budget lasts."""
    watch = Watch(job.pace, url)
    for attempt in range(job.retries + 1):
        try:
            return _attempt(url, job, watch)
        except _TransientError as exc:
            failure = exc
            stalled = watch.give_up(exc)
            if stalled is not None:
                raise stalled from exc
            if attempt < job.retries:
                time.sleep(min(RETRY_BASE_DELAY * 2**attempt, max(watch.stall_left(), 0)))
    raise DownloadError(f"{url}: {failure} (after {job.retries + 1} attempts)") from root_cause(failure)


def _attempt(url: str, job: _Job, watch: Watch) -> str:
    """One request, resuming from ``<dest>.partial`` when it exists; returns the finished file's digest."""
    partial = _partial_path(job.dest)
    offset, hasher = hash_file(partial) if partial.exists() else (0, hashlib.sha256())
    try:
        response = urllib.request.urlopen(_request(url, offset), timeout=watch.timeout(job.timeout))
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset and job.expected and digest_matches(hasher.hexdigest(), job.expected):
            return _finish(partial, hasher.hexdigest(), url, job)  # complete: a crash came before the rename
        if exc.code == 416 and offset:  # the partial is longer than the file: start over
            partial.unlink()
            return _attempt(url, job, watch)
        raise _http_failure(url, exc) from exc
    except http.client.InvalidURL as exc:
        raise DownloadError(f"{url}: {_reason(exc)}") from exc
    except (http.client.BadStatusLine, http.client.LineTooLong) as exc:
        if isinstance(exc, http.client.RemoteDisconnected):
            raise _TransientError(f"cannot connect ({_reason(exc)})") from exc
        raise DownloadError(f"{url}: the server's answer is not HTTP ({_reason(exc)}): check the URL") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _TransientError(f"cannot connect ({_reason(exc)})") from exc
    watch.restart_window()
    with response:
        offset, hasher = _resume_point(response, partial, offset, hasher)
        chunks = _chunks(response, watch)
        first = next(chunks, b"")
        _reject_html(response, first if offset == 0 else b"", chunks, partial)
        length = _content_length(response)
        with _progress_bar(job, offset, None if length is None else offset + length) as bar:
            written = _store(itertools.chain([first], chunks), partial, offset, hasher, bar, job)
    if length is not None and written < length:
        raise _TransientError(f"connection closed after {offset + written} of {offset + length} bytes")
    return _finish(partial, hasher.hexdigest(), url, job)


def _request(url: str, offset: int) -> urllib.request.Request:
    headers = {"User-Agent": _user_agent()}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.Request(url, headers=headers)


def _user_agent() -> str:
    return f"ssl_zoo/{__version__}"


def _http_failure(url: str, exc: urllib.error.HTTPError) -> Exception:
    """Server errors and rate limits are retried; other statuses (404, 403, a redirect loop) are final."""
    if 300 <= exc.code < 400:  # urllib gave up following: a loop, or more redirects than it allows
        return DownloadError(f"{url}: the server redirects in a loop (HTTP {exc.code}): the link is broken; {_ADVICE}")
    message = f"HTTP {exc.code} {_reason(exc)}"
    return _TransientError(message) if exc.code >= 500 or exc.code in (408, 429) else DownloadError(f"{url}: {message}")


def _reason(exc: BaseException) -> str:
    """What went wrong, on one short line (servers and urllib put newlines and raw bytes in messages)."""
    text = str(getattr(exc, "reason", None) or exc).strip()
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return (line if line.isprintable() else repr(line))[:120] or type(exc).__name__


def _resume_point(
    response: http.client.HTTPResponse, partial: Path, offset: int, hasher: hashlib._Hash
) -> tuple[int, hashlib._Hash]:
    """Keep the partial bytes only if the server answered 206 from exactly ``offset``."""
    if not offset:
        return offset, hasher
    if response.status != 206:  # the whole file: start over
        return 0, hashlib.sha256()
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if match is None or int(match.group(1)) != offset:
        partial.unlink()
        raise _TransientError(f"server answered a different byte range than bytes={offset}-")
    return offset, hasher


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _chunks(response: http.client.HTTPResponse, watch: Watch) -> Iterator[bytes]:
    """The body in chunks as they arrive (``read1``: a drip is seen byte by byte, so the rate rule applies);
    a failed read becomes a retryable failure, a rate below the floor a ``StalledDownloadError``."""
    while True:
        try:
            chunk = response.read1(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            raise _TransientError(f"connection lost ({_reason(exc)})") from exc
        watch.got(len(chunk))
        if not chunk:
            return
        yield chunk


def _reject_html(response: http.client.HTTPResponse, first: bytes, rest: Iterator[bytes], partial: Path) -> None:
    """Raise ``_HtmlPageError`` (leaving no partial file) if the answer is a web page rather than the file."""
    if response.headers.get_content_type() != "text/html" and not looks_like_html(first):
        return
    page = first + b"".join(itertools.islice(rest, MAX_PAGE // CHUNK))
    partial.unlink(missing_ok=True)
    raise _HtmlPageError(page.decode("utf-8", "replace"), response.geturl())


def _copy_local(url: str, job: _Job) -> str:
    """Copy a file:// URL into ``dest`` with the same hashing and atomic rename as a download."""
    source = Path(urllib.request.url2pathname(urlsplit(url).path))
    try:
        handle = open(source, "rb")  # noqa: SIM115 (closed by the `with` below; only opening is a URL failure)
    except OSError as exc:
        raise DownloadError(f"{url}: cannot read {source} ({exc.strerror})") from exc
    partial, hasher = _partial_path(job.dest), hashlib.sha256()
    with handle, _progress_bar(job, 0, os.fstat(handle.fileno()).st_size) as bar:
        _store(file_chunks(handle, CHUNK), partial, 0, hasher, bar, job)
    return _finish(partial, hasher.hexdigest(), url, job)


def _store(chunks: Iterator[bytes], partial: Path, offset: int, hasher: hashlib._Hash, bar: tqdm, job: _Job) -> int:
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


def _finish(partial: Path, digest: str, url: str, job: _Job) -> str:
    """Check the digest, then move the complete file into place and make the rename durable."""
    try:
        match_digest(digest, [(job.expected, "expected")], url)
    except ChecksumError:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, job.dest)
    fsync_dir(job.dest.parent)
    return digest


def _partial_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


def _progress_bar(job: _Job, initial: int, total: int | None) -> tqdm:
    """A byte-count bar on stderr, or a disabled one that only counts (``ssl_zoo.progress``)."""
    return byte_bar(progress=job.progress, desc=job.label or job.dest.name, total=total, initial=initial)
