"""ssl_zoo.store.download against a loopback HTTP server with injected faults."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from filelock import FileLock

from ssl_zoo.store import download, partial, transfer
from ssl_zoo.store.webpages import confirm_url
from ssl_zoo import progress
from ssl_zoo.store.download import fetch, normalize_url
from ssl_zoo.errors import ChecksumError, DiskFullError, DownloadError, NotACheckpointError
from tests.loopback import LoopbackServer

SIZE = 300_000
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> LoopbackServer:
    with LoopbackServer(tmp_path_factory.mktemp("served")) as srv:
        yield srv


@pytest.fixture(autouse=True)
def fresh(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.reset()
    monkeypatch.setattr(transfer, "RETRY_BASE_DELAY", 0.001)
    monkeypatch.delenv("SSL_ZOO_QUIET", raising=False)


@pytest.fixture
def blob(server: LoopbackServer, request: pytest.FixtureRequest) -> tuple[str, bytes, str]:
    """A random file served at ``<test name>/weights.bin``: (relative path, bytes, sha256)."""
    rel = re.sub(r"\W+", "_", request.node.name) + "/weights.bin"
    data = os.urandom(SIZE)
    (server.root / rel).parent.mkdir(parents=True, exist_ok=True)
    (server.root / rel).write_bytes(data)
    return rel, data, hashlib.sha256(data).hexdigest()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "downloads" / "entry" / "weights.bin"


def partial_of(dest: Path) -> Path:
    return dest.with_name(dest.name + ".partial")


def assert_one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def assert_nothing_kept(dest: Path) -> None:
    assert not dest.exists()
    assert not partial_of(dest).exists()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/nothing.bin"


# --- plain transfers -----------------------------------------------------------------------------------


def test_http_download_writes_file_and_returns_digest(server, blob, dest):
    rel, data, digest = blob
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert dest.read_bytes() == data
    assert not partial_of(dest).exists()
    assert server.count(rel) == 1
    assert server.requests[0].range is None
    assert server.requests[0].user_agent.startswith("ssl_zoo")


def test_file_url_is_copied_and_hashed(server, blob, dest):
    rel, data, digest = blob
    assert fetch([(server.root / rel).as_uri()], dest, sha256_prefix=digest[:10]) == digest
    assert dest.read_bytes() == data
    assert not partial_of(dest).exists()
    assert server.requests == []


def test_file_url_checksum_mismatch_keeps_nothing(server, blob, dest):
    rel, _, digest = blob
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ChecksumError):
        fetch([(server.root / rel).as_uri()], dest, sha256=wrong)
    assert_nothing_kept(dest)


def test_missing_file_url_is_a_download_error(tmp_path, dest):
    with pytest.raises(DownloadError) as exc:
        fetch([(tmp_path / "absent.bin").as_uri()], dest)
    assert "absent.bin" in assert_one_line(exc)


def test_existing_dest_is_verified_without_downloading(server, blob, dest):
    rel, data, digest = blob
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert server.requests == []


def test_existing_dest_with_other_hash_is_refused(server, blob, dest):
    rel, data, digest = blob
    dest.parent.mkdir(parents=True)
    dest.write_bytes(data[:-1])
    with pytest.raises(ChecksumError) as exc:
        fetch([f"{server.url}/{rel}"], dest, sha256=digest)
    assert digest in assert_one_line(exc)
    assert server.requests == []


def test_no_urls_is_a_download_error(dest):
    with pytest.raises(DownloadError, match="SSL_ZOO_MIRROR"):
        fetch([], dest)


@pytest.mark.parametrize(
    ("sha256", "prefix"),
    [("abc", None), ("g" * 64, None), (None, "abcdef1"), (None, "xyz12345"), ("a" * 64, "b" * 8)],
)
def test_malformed_hash_arguments_are_value_errors(dest, sha256, prefix):
    with pytest.raises(ValueError):
        fetch(["http://127.0.0.1:9/x"], dest, sha256=sha256, sha256_prefix=prefix)


# --- several URLs ----------------------------------------------------------------------------------------


def test_falls_through_to_the_next_url(server, blob, dest):
    rel, data, digest = blob
    urls = [closed_port_url(), f"{server.url}/missing/weights.bin", f"{server.url}/{rel}"]
    assert fetch(urls, dest, sha256=digest, retries=1) == digest
    assert dest.read_bytes() == data
    assert server.count("missing/weights.bin") == 1  # a 404 is final: not retried
    assert server.count(rel) == 1


def test_every_failed_url_is_named(server, dest):
    urls = [closed_port_url(), f"{server.url}/missing/weights.bin"]
    with pytest.raises(DownloadError) as exc:
        fetch(urls, dest, retries=1)
    message = assert_one_line(exc)
    assert urls[0] in message and urls[1] in message and "404" in message
    assert "SSL_ZOO_MIRROR" in message and "--from-file" in message
    assert exc.type is DownloadError
    assert_nothing_kept(dest)


def test_checksum_error_from_every_url_stays_a_checksum_error(server, blob, dest):
    rel, _, digest = blob
    server.flip_byte(rel, 10)
    url = f"{server.url}/{rel}"
    with pytest.raises(ChecksumError) as exc:
        fetch([url, url], dest, sha256=digest)
    assert assert_one_line(exc).count(url) == 2
    assert server.count(rel) == 2
    assert_nothing_kept(dest)


# --- retries and resume ----------------------------------------------------------------------------------


def test_500_once_is_retried(server, blob, dest):
    rel, data, digest = blob
    server.fail(rel, 500)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert server.count(rel) == 2
    assert dest.read_bytes() == data


def test_persistent_500_gives_up_after_the_retries(server, blob, dest):
    rel, _, digest = blob
    server.fail(rel, 503, times=None)
    with pytest.raises(DownloadError) as exc:
        fetch([f"{server.url}/{rel}"], dest, sha256=digest, retries=2)
    assert "503" in assert_one_line(exc)
    assert server.count(rel) == 3


def test_retry_backoff_doubles(server, blob, dest, monkeypatch):
    rel, _, _ = blob
    sleeps: list[float] = []
    monkeypatch.setattr(transfer, "time", SimpleNamespace(sleep=sleeps.append))  # not the server's
    monkeypatch.setattr(transfer, "RETRY_BASE_DELAY", 0.25)
    server.fail(rel, 500, times=None)
    with pytest.raises(DownloadError):
        fetch([f"{server.url}/{rel}"], dest, retries=3)
    assert sleeps == [0.25, 0.5, 1.0]


def test_timeout_is_retried(server, blob, dest):
    rel, data, digest = blob
    server.slow(rel, 1.0, times=1)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest, timeout=0.2) == digest
    assert server.count(rel) == 2
    assert dest.read_bytes() == data


def test_dropped_connection_resumes_with_range(server, blob, dest):
    rel, data, digest = blob
    server.drop_after(rel, 100_000)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert dest.read_bytes() == data
    assert [r.range for r in server.requests] == [None, "bytes=100000-"]
    assert not partial_of(dest).exists()


def test_short_read_without_retries_keeps_partial_for_the_next_call(server, blob, dest):
    rel, data, digest = blob
    server.drop_after(rel, 120_000)
    with pytest.raises(DownloadError, match="120000 of 300000"):
        fetch([f"{server.url}/{rel}"], dest, sha256=digest, retries=0)
    assert partial_of(dest).read_bytes() == data[:120_000]
    assert not dest.exists()
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert server.requests[-1].range == "bytes=120000-"
    assert dest.read_bytes() == data


def test_existing_partial_is_resumed(server, blob, dest):
    rel, data, digest = blob
    dest.parent.mkdir(parents=True)
    partial_of(dest).write_bytes(data[:70_000])
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert [r.range for r in server.requests] == ["bytes=70000-"]
    assert dest.read_bytes() == data


def test_server_ignoring_range_starts_over(server, blob, dest):
    rel, data, digest = blob
    dest.parent.mkdir(parents=True)
    partial_of(dest).write_bytes(b"stale bytes from another file" * 100)
    server.ignore_range(rel)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert server.count(rel) == 1
    assert dest.read_bytes() == data


def test_416_starts_over(server, blob, dest):
    rel, data, digest = blob
    dest.parent.mkdir(parents=True)
    partial_of(dest).write_bytes(data + b"longer than the file")
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert [r.range for r in server.requests] == [f"bytes={SIZE + 20}-", None]
    assert dest.read_bytes() == data


def test_complete_partial_with_matching_hash_is_finished_after_416(server, blob, dest):
    rel, data, digest = blob
    dest.parent.mkdir(parents=True)
    partial_of(dest).write_bytes(data)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert [r.range for r in server.requests] == [f"bytes={SIZE}-"]
    assert dest.read_bytes() == data
    assert not partial_of(dest).exists()


def test_drop_then_resume_against_server_ignoring_range(server, blob, dest):
    rel, data, digest = blob
    server.drop_after(rel, 50_000)
    server.ignore_range(rel)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert dest.read_bytes() == data
    assert server.count(rel) == 2


# --- hashes ----------------------------------------------------------------------------------------------


def test_sha256_prefix_is_accepted(server, blob, dest):
    rel, data, digest = blob
    assert fetch([f"{server.url}/{rel}"], dest, sha256_prefix=digest[:8].upper()) == digest
    assert dest.read_bytes() == data


@pytest.mark.parametrize("kind", ["sha256", "sha256_prefix"])
def test_corrupt_byte_is_a_checksum_error_and_keeps_nothing(server, blob, dest, kind):
    rel, data, digest = blob
    server.flip_byte(rel, 12_345)
    url = f"{server.url}/{rel}"
    expected = digest if kind == "sha256" else digest[:8]
    with pytest.raises(ChecksumError) as exc:
        fetch([url], dest, **{kind: expected})
    message = assert_one_line(exc)
    corrupt = bytearray(data)
    corrupt[12_345] ^= 0xFF
    assert expected in message and hashlib.sha256(corrupt).hexdigest() in message and url in message
    assert "another mirror" in message
    assert_nothing_kept(dest)


def test_without_expected_hash_the_digest_is_returned(server, blob, dest):
    rel, _, digest = blob
    assert fetch([f"{server.url}/{rel}"], dest) == digest


# --- web pages instead of files --------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_is_not_a_checkpoint(server, blob, dest, content_type):
    rel, _, _ = blob
    server.serve_html(rel, content_type=content_type)
    url = f"{server.url}/{rel}"
    with pytest.raises(NotACheckpointError) as exc:
        fetch([url], dest)
    message = assert_one_line(exc)
    assert url in message and "--from-file" in message
    assert server.count(rel) == 1  # not retried
    assert_nothing_kept(dest)


def test_html_answer_to_a_resume_removes_the_partial(server, blob, dest):
    rel, data, _ = blob
    dest.parent.mkdir(parents=True)
    partial_of(dest).write_bytes(data[:1000])
    server.serve_html(rel)
    with pytest.raises(NotACheckpointError):
        fetch([f"{server.url}/{rel}"], dest)
    assert_nothing_kept(dest)


@pytest.mark.parametrize("style", ["form", "link"])
@pytest.mark.parametrize("absolute", [True, False])
def test_google_drive_confirmation_is_followed(server, blob, dest, style, absolute):
    rel, data, digest = blob
    page = f"{Path(rel).parent}/uc"
    action = f"{server.url}/{rel}" if absolute else "weights.bin"
    server.serve_gdrive_confirm(page, action, style=style)
    assert fetch([f"{server.url}/{page}"], dest, sha256=digest) == digest
    assert dest.read_bytes() == data
    [followed] = [r for r in server.requests if r.path == rel]
    assert "confirm=" in followed.query and "export=download" in followed.query and "&amp;" not in followed.query


def test_google_drive_confirmation_leading_to_another_page_stops(server, blob, dest):
    rel, _, _ = blob
    page = f"{Path(rel).parent}/uc"
    server.serve_gdrive_confirm(page, "weights.bin")
    server.serve_html(rel)
    with pytest.raises(NotACheckpointError) as exc:
        fetch([f"{server.url}/{page}"], dest)
    assert f"{server.url}/{page}" in assert_one_line(exc)
    assert server.count(rel) == 1  # one hop only
    assert_nothing_kept(dest)


def test_confirm_url_parses_form_inputs():
    page = '<html><form id="download-form" action="/download?a=1"><input type="hidden" name="id" value="X Y"></form>'
    assert confirm_url(page, "https://host/uc?id=X") == "https://host/download?a=1&id=X+Y"
    assert confirm_url("<html><a href='/other'>x</a></html>", "https://host/uc") is None


# --- local failures --------------------------------------------------------------------------------------


def failing_writer(monkeypatch: pytest.MonkeyPatch, exc: BaseException, after_chunks: int) -> None:
    calls = {"n": 0}
    real = partial._write_chunk

    def write(out, chunk):
        calls["n"] += 1
        if calls["n"] > after_chunks:
            raise exc
        real(out, chunk)

    monkeypatch.setattr(partial, "_write_chunk", write)


def test_disk_full_removes_the_partial(server, blob, dest, monkeypatch):
    rel, _, _ = blob
    failing_writer(monkeypatch, OSError(errno.ENOSPC, "No space left on device"), after_chunks=2)
    with pytest.raises(DiskFullError) as exc:
        fetch([f"{server.url}/{rel}"], dest)
    message = assert_one_line(exc)
    assert str(dest) in message and "SSL_ZOO_HOME" in message
    assert isinstance(exc.value, OSError)
    assert server.count(rel) == 1
    assert_nothing_kept(dest)


def test_other_write_errors_propagate_unchanged(server, blob, dest, monkeypatch):
    rel, _, _ = blob
    failing_writer(monkeypatch, PermissionError(errno.EACCES, "denied"), after_chunks=1)
    with pytest.raises(PermissionError):
        fetch([f"{server.url}/{rel}"], dest)
    assert server.count(rel) == 1


def test_keyboard_interrupt_keeps_a_resumable_partial(server, blob, dest, monkeypatch):
    rel, data, digest = blob
    write_chunk = partial._write_chunk
    failing_writer(monkeypatch, KeyboardInterrupt(), after_chunks=2)
    with pytest.raises(KeyboardInterrupt):
        fetch([f"{server.url}/{rel}"], dest, sha256=digest)
    kept = partial_of(dest).read_bytes()
    assert kept == data[: len(kept)] and 0 < len(kept) < SIZE
    assert not dest.exists()
    with FileLock(str(dest) + ".lock", timeout=0):  # released
        pass
    monkeypatch.setattr(partial, "_write_chunk", write_chunk)
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest
    assert server.requests[-1].range == f"bytes={len(kept)}-"
    assert dest.read_bytes() == data


def test_stop_all_ends_downloads_in_other_threads_resumably(server, blob, dest, monkeypatch):
    rel, data, digest = blob
    write_chunk = partial._write_chunk

    def stop_after_first_chunk(out, chunk):
        write_chunk(out, chunk)
        download.stop_all()  # what a Ctrl-C in the main thread of a parallel pull does

    monkeypatch.setattr(partial, "_write_chunk", stop_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        fetch([f"{server.url}/{rel}"], dest, sha256=digest)
    assert 0 < partial_of(dest).stat().st_size < SIZE and not dest.exists()
    monkeypatch.setattr(partial, "_write_chunk", write_chunk)
    download.allow_downloads()
    assert fetch([f"{server.url}/{rel}"], dest, sha256=digest) == digest and dest.read_bytes() == data


# --- processes -------------------------------------------------------------------------------------------

CHILD = """
import sys, time
from pathlib import Path
from ssl_zoo.store.download import fetch
go = Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)
print(fetch([sys.argv[1]], Path(sys.argv[2]), sha256=sys.argv[4], progress=False))
"""


def test_two_processes_download_once(server, blob, dest, tmp_path):
    rel, data, digest = blob
    server.slow(rel, 0.5)  # long enough that the second process arrives mid-download
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-c", CHILD, f"{server.url}/{rel}", str(dest), str(go), digest]
    children = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)  # let both import and wait for the start signal
    go.touch()
    try:
        outputs = [child.communicate(timeout=20)[0].strip() for child in children]
    finally:
        for child in children:
            child.kill()  # no-op once they have exited
    assert [child.returncode for child in children] == [0, 0]
    assert outputs == [digest, digest]
    assert server.count(rel) == 1
    assert dest.read_bytes() == data


# --- helpers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.dropbox.com/s/abc/w.pth?dl=0", "https://www.dropbox.com/s/abc/w.pth?dl=1"),
        ("https://www.dropbox.com/s/abc/w.pth", "https://www.dropbox.com/s/abc/w.pth?dl=1"),
        ("https://www.dropbox.com/scl/fi/x/w.pth?rlkey=k&dl=0", "https://www.dropbox.com/scl/fi/x/w.pth?rlkey=k&dl=1"),
        ("https://dropbox.com/s/abc/w.pth?rlkey=k", "https://dropbox.com/s/abc/w.pth?rlkey=k&dl=1"),
        ("https://www.dropbox.com/s/abc/w.pth?dl=1", "https://www.dropbox.com/s/abc/w.pth?dl=1"),
        ("https://example.com/w.pth?dl=0", "https://example.com/w.pth?dl=0"),
        ("https://notdropbox.com/w.pth", "https://notdropbox.com/w.pth"),
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    ("requested", "tty", "quiet", "shown"),
    [(True, True, None, True), (False, True, None, False), (True, False, None, False), (True, True, "1", False)],
)
def test_show_progress(monkeypatch, requested, tty, quiet, shown):
    monkeypatch.setattr(sys, "stderr", _Tty(tty))
    if quiet:
        monkeypatch.setenv("SSL_ZOO_QUIET", quiet)
    assert progress.shown(requested) is shown


def test_progress_bar_goes_to_stderr(server, blob, dest, monkeypatch, capsys):
    rel, _, _ = blob
    monkeypatch.setattr(progress, "shown", lambda requested: requested)
    fetch([f"{server.url}/{rel}"], dest, label="my-weights")
    captured = capsys.readouterr()
    assert "my-weights" in captured.err and captured.out == ""
    fetch([f"{server.url}/{rel}"], dest.with_name("quiet.bin"), label="silent", progress=False)
    assert "silent" not in capsys.readouterr().err
