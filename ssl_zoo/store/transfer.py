"""One http(s) URL's bytes into ``dest``: the attempt, retry and resume state machine.

Each attempt resumes ``<dest>.partial`` with a ``Range`` request (a 206 from exactly its length, else it starts
over), hashes while it writes, and on success checks the digest and renames the file into place. Connection
errors, timeouts, 5xx and short reads are retried with exponential back-off while the stall budget
(``store.throughput``) lasts; a web page instead of the file follows one Google Drive confirmation link.
Which URLs to try, and the lock around them, are ``store.download``'s job; writing the ``.partial`` file is
``store.partial``'s.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ssl_zoo import __version__
from ssl_zoo.store import cache
from ssl_zoo.errors import DownloadError, NotACheckpointError, root_cause
from ssl_zoo.store.hashes import digest_matches, hash_file
from ssl_zoo.store.partial import CHUNK, Job, finish, partial_path, progress_bar, store_chunks
from ssl_zoo.store.throughput import Watch
from ssl_zoo.store.webpages import confirm_url, looks_like_html

RETRY_BASE_DELAY = 0.5  # seconds before the first retry; doubled for each further one
MAX_PAGE = 1 << 20  # bytes of an HTML page read to look for a download confirmation
ADVICE = f"check the network or set {cache.MIRROR_ENV} / use `ssl-zoo convert NAME --from-file FILE`"


class _TransientError(Exception):
    """A failure worth retrying: the bytes already on disk are kept and resumed."""


class _HtmlPageError(Exception):
    """The server answered a web page instead of the file; args: (page text, page URL)."""


def fetch_http(url: str, job: Job) -> str:
    """Fetch one http(s) URL (following one Google Drive confirmation page) into ``job.dest``; return its sha256.

    Raises:
        DownloadError, StalledDownloadError, ChecksumError, DiskFullError: as ``store.download.fetch``.
        NotACheckpointError: The URL gave a web page (a login or confirmation page) instead of the file.
    """
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


def _download(url: str, job: Job) -> str:
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


def _attempt(url: str, job: Job, watch: Watch) -> str:
    """One request, resuming from ``<dest>.partial`` when it exists; returns the finished file's digest."""
    partial = partial_path(job.dest)
    offset, hasher = hash_file(partial) if partial.exists() else (0, hashlib.sha256())
    try:
        response = urllib.request.urlopen(_request(url, offset), timeout=watch.timeout(job.timeout))
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset and job.expected and digest_matches(hasher.hexdigest(), job.expected):
            return finish(partial, hasher.hexdigest(), url, job)  # complete: a crash came before the rename
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
        with progress_bar(job, offset, None if length is None else offset + length) as bar:
            written = store_chunks(itertools.chain([first], chunks), partial, offset, hasher, bar, job)
    if length is not None and written < length:
        raise _TransientError(f"connection closed after {offset + written} of {offset + length} bytes")
    return finish(partial, hasher.hexdigest(), url, job)


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
        return DownloadError(f"{url}: the server redirects in a loop (HTTP {exc.code}): the link is broken; {ADVICE}")
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
