"""A loopback HTTP server for tests: serves ``<root>/<path>`` at ``<url>/<path>``, with injectable faults.

It speaks just enough HTTP for ``ssl_zoo.store.download``: HEAD and GET, ``Range: bytes=N-`` (206 with
``Content-Range``, 416 past the end), ``Content-Length``, ``ETag``. Used as ``SSL_ZOO_MIRROR`` it serves
``<root>/<name>/<file>``. Every request is logged, and each path can be given faults that misbehave for a
number of requests and then stop::

    with LoopbackServer(tmp_path) as server:
        server.drop_after("dino/weights.pth", 100_000)      # first GET is cut after 100 kB
        fetch([f"{server.url}/dino/weights.pth"], dest)
        assert server.count("dino/weights.pth") == 2        # the retry resumed with a Range request
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Sign in to continue</body></html>\n"

GDRIVE_FORM = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>Google Drive can't scan this file for viruses.</p>
<form id="download-form" action="{action}" method="get">
<input type="submit" id="uc-download-link" value="Download anyway">
<input type="hidden" name="id" value="1AbCdEf">
<input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t">
<input type="hidden" name="uuid" value="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0">
</form></body></html>
"""

GDRIVE_LINK = """<html><head><title>Google Drive - Virus scan warning</title></head><body>
<a id="uc-download-link" href="{action}?export=download&amp;confirm=AbC1&amp;id=1AbCdEf">Download anyway</a>
</body></html>
"""


@dataclass
class Fault:
    """One misbehaviour of one path, for ``times`` requests (None: every request until ``reset``).

    ``status`` or ``body`` replace the whole answer; the other fields alter the file's answer.
    """

    status: int | None = None  # answer this status (with ``body``, or empty) instead of the file
    body: bytes | None = None  # answer these bytes instead of the file
    content_type: str = "application/octet-stream"
    drop_after: int | None = None  # send the full Content-Length, then close after this many body bytes
    flip_at: int | None = None  # XOR the byte at this file offset with 0xFF
    ignore_range: bool = False  # answer 200 and the whole file even to a Range request
    delay: float = 0.0  # seconds to wait before answering
    times: int | None = 1

    def replaces_answer(self) -> bool:
        """Whether this fault answers instead of the file."""
        return self.status is not None or self.body is not None


class Request(NamedTuple):
    """One logged request."""

    method: str
    path: str  # relative to the root, no leading slash, no query
    query: str
    range: str | None
    user_agent: str | None


@dataclass
class _State:
    root: Path
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_faults(self, path: str) -> list[Fault]:
        """The faults active for this request, counting it against their ``times``."""
        with self.lock:
            active = self.faults.get(path, [])
            for fault in active:
                if fault.times is not None:
                    fault.times -= 1
            self.faults[path] = [f for f in active if f.times is None or f.times > 0]
            return list(active)


class _Handler(BaseHTTPRequestHandler):
    state: _State  # set on the per-server subclass

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet; the request log is ``LoopbackServer.requests``."""

    def _answer(self, send_body: bool) -> None:
        split = urlsplit(self.path)
        path = unquote(split.path).lstrip("/")
        with self.state.lock:
            self.state.requests.append(
                Request(self.command, path, split.query, self.headers.get("Range"), self.headers.get("User-Agent"))
            )
        faults = self.state.take_faults(path)
        time.sleep(sum(f.delay for f in faults))
        canned = next((f for f in faults if f.replaces_answer()), None)
        if canned is not None:
            return self._send(
                canned.status or 200, canned.body or b"", {"Content-Type": canned.content_type}, send_body
            )
        file = self._file(path)
        if file is None:
            return self._send(404, b"not found\n", {"Content-Type": "text/plain"}, send_body)
        self._send_file(file, faults, send_body)

    def _file(self, path: str) -> Path | None:
        root = self.state.root.resolve()
        file = (root / path).resolve()
        return file if file.is_file() and file.is_relative_to(root) else None

    def _send_file(self, file: Path, faults: list[Fault], send_body: bool) -> None:
        data = bytearray(file.read_bytes())
        for offset in (f.flip_at for f in faults if f.flip_at is not None and f.flip_at < len(data)):
            data[offset] ^= 0xFF
        stat = file.stat()
        headers = {
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
            "ETag": f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"',
        }
        start = None if any(f.ignore_range for f in faults) else _range_start(self.headers.get("Range"))
        if start is not None and start >= len(data):
            return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"}, send_body)
        if start is not None:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        drop = min((f.drop_after for f in faults if f.drop_after is not None), default=None)
        self._send(200 if start is None else 206, bytes(data[start or 0 :]), headers, send_body, drop)

    def _send(
        self, status: int, body: bytes, headers: dict[str, str], send_body: bool, drop: int | None = None
    ) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body if drop is None else body[:drop])
        self.wfile.flush()
        self.close_connection = True


def _range_start(header: str | None) -> int | None:
    """N from ``bytes=N-`` (the only form ssl_zoo sends), else None (answer the whole file)."""
    if not header or not header.startswith("bytes=") or not header.endswith("-"):
        return None
    value = header[len("bytes=") : -1]
    return int(value) if value.isdigit() else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (timeouts, dropped connections) is expected here, not an error."""


class ServedOnLoopback:
    """A request handler class served on 127.0.0.1 at an ephemeral port from a daemon thread until ``close()``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LoopbackServer(ServedOnLoopback):
    """Serve ``root`` at ``<url>/<relative path>``, with the faults set on it.

    Args:
        root: the directory whose files are served at ``<url>/<relative path>``.
    """

    def __init__(self, root: Path) -> None:
        self._state = _State(Path(root))
        super().__init__(type("Handler", (_Handler,), {"state": self._state}))

    @property
    def root(self) -> Path:
        """The directory being served."""
        return self._state.root

    @property
    def faults(self) -> dict[str, list[Fault]]:
        """Active faults by path (relative, no leading slash); edit it directly or use the helpers below."""
        return self._state.faults

    @property
    def requests(self) -> list[Request]:
        """Every request received since the last ``reset``, in order."""
        with self._state.lock:
            return list(self._state.requests)

    def count(self, path: str, method: str = "GET") -> int:
        """How many ``method`` requests ``path`` received since the last ``reset``."""
        path = path.lstrip("/")
        return sum(1 for r in self.requests if r.path == path and r.method == method)

    def add_fault(self, path: str, fault: Fault) -> Fault:
        """Make ``path`` misbehave as ``fault`` says; faults of one path combine."""
        with self._state.lock:
            self._state.faults.setdefault(path.lstrip("/"), []).append(fault)
        return fault

    def drop_after(self, path: str, nbytes: int, times: int | None = 1) -> Fault:
        """Close the connection after ``nbytes`` body bytes (Content-Length still promises all of them)."""
        return self.add_fault(path, Fault(drop_after=nbytes, times=times))

    def flip_byte(self, path: str, offset: int, times: int | None = None) -> Fault:
        """Corrupt the byte at file offset ``offset``."""
        return self.add_fault(path, Fault(flip_at=offset, times=times))

    def serve_html(self, path: str, content_type: str = "text/html", times: int | None = None) -> Fault:
        """Answer a login-style HTML page (sent as ``content_type``) instead of the file."""
        return self.add_fault(path, Fault(body=HTML_PAGE, content_type=content_type, times=times))

    def serve_gdrive_confirm(self, path: str, action: str, style: str = "form", times: int | None = None) -> Fault:
        """Answer a Google-Drive "can't scan for viruses" page whose download points to ``action``.

        ``style`` "form" is the current ``<form id="download-form">`` page, "link" the older
        ``href="...confirm=..."`` one; ``action`` is an absolute URL or a path relative to the page.
        """
        page = (GDRIVE_FORM if style == "form" else GDRIVE_LINK).format(action=action)
        return self.add_fault(path, Fault(body=page.encode(), content_type="text/html; charset=utf-8", times=times))

    def ignore_range(self, path: str, times: int | None = None) -> Fault:
        """Answer 200 and the whole file even to a Range request."""
        return self.add_fault(path, Fault(ignore_range=True, times=times))

    def fail(self, path: str, status: int = 500, times: int | None = 1) -> Fault:
        """Answer ``status`` with an empty body."""
        return self.add_fault(path, Fault(status=status, times=times))

    def slow(self, path: str, seconds: float, times: int | None = None) -> Fault:
        """Wait ``seconds`` before answering (before the status line)."""
        return self.add_fault(path, Fault(delay=seconds, times=times))

    def reset(self) -> None:
        """Forget all faults and the request log."""
        with self._state.lock:
            self._state.faults.clear()
            self._state.requests.clear()
