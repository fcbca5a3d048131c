"""Hostile servers and a cache under attack: no poisoned digest, no stale temporary, no silent damage, no hang.

Servers that drip, stall, loop or lie are loopback handlers built here; downloads that could hang run in a
forked child with a deadline (``tests/hostile.py``), so a regression fails instead of waiting minutes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
import tomllib
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import torch

import ssl_zoo
from ssl_zoo import errors
from ssl_zoo.cli.main import main as cli_main
from ssl_zoo.converters.readers import read_checkpoint
from ssl_zoo.pulling import pull_many
from ssl_zoo.store import cache
from ssl_zoo.store.download import fetch
from ssl_zoo.store.hashes import record_digest, recorded_digests
from ssl_zoo.store.throughput import Pace

from .conftest import mirror_path, pin
from .hostile import run_limited
from .loopback import Fault, ServedOnLoopback

R18 = "supervised-r18"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(name: str) -> list[Path]:
    root = cache.home()
    return sorted([*root.glob(f"models/.{name}.*"), *root.glob(f"downloads/.{name}.*")])


# --- networks that never finish, lie or loop ---------------------------------------------------------------


class Misbehaving(BaseHTTPRequestHandler):
    """``/drip``: a byte every 0.2 s; ``/stall``: half the body, then silence; ``/loop``: redirects to itself;
    ``/garbage``: no HTTP at all; ``/page``: HTML that ``html.parser`` asserts on."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
        if self.path == "/garbage":
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\r\n\r\n")
            return
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<!DOCTYPE html><html><![foo[ x ]]></html>" if self.path == "/page" else bytes(1000)
        self.send_response(200)
        self.send_header("Content-Type", "text/html" if self.path == "/page" else "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path == "/drip":
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.2)
        elif self.path == "/stall":
            self.wfile.write(body[:500])
            self.wfile.flush()
            time.sleep(30)
        else:
            self.wfile.write(body)


@pytest.fixture(scope="module")
def hostile_server():
    with ServedOnLoopback(Misbehaving) as server:
        yield server


def test_a_dripping_server_is_abandoned_by_the_rate_floor(hostile_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SSL_ZOO_MIN_RATE", "100")
    monkeypatch.setenv("SSL_ZOO_RATE_WINDOW", "1")
    dest = tmp_path / "file.bin"
    start = time.monotonic()
    outcome = run_limited(lambda: fetch([f"{hostile_server.url}/drip"], dest, retries=0), timeout=15)
    assert outcome.kind == "StalledDownloadError" and "B/s" in outcome.message, outcome
    assert time.monotonic() - start < 10
    assert dest.with_name("file.bin.partial").stat().st_size > 0  # kept for resume


def test_a_stalled_server_is_given_up_within_the_stall_budget(hostile_server, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SSL_ZOO_STALL_TIMEOUT", "1.5")
    dest = tmp_path / "file.bin"
    start = time.monotonic()
    outcome = run_limited(lambda: fetch([f"{hostile_server.url}/stall"], dest, retries=5), timeout=15)
    assert outcome.kind == "StalledDownloadError" and "SSL_ZOO_STALL_TIMEOUT" in outcome.message, outcome
    assert time.monotonic() - start < 10
    assert dest.with_name("file.bin.partial").stat().st_size == 500


def test_the_default_rules_give_up_within_a_minute_and_bad_settings_are_refused(monkeypatch) -> None:
    pace = Pace.from_env()
    assert pace.stall < 60 and pace.window < 60 and pace.min_rate > 0
    monkeypatch.setenv("SSL_ZOO_RATE_WINDOW", "soon")
    with pytest.raises(errors.SettingError, match="SSL_ZOO_RATE_WINDOW"):
        Pace.from_env()


@pytest.mark.parametrize("path, kind, words", [("loop", "DownloadError", "redirects in a loop"),
                                               ("garbage", "DownloadError", "not HTTP"),
                                               ("page", "NotACheckpointError", "HTML page")])
def test_lying_servers_end_in_one_typed_line(hostile_server, tmp_path, path, kind, words) -> None:
    outcome = run_limited(lambda: fetch([f"{hostile_server.url}/{path}"], tmp_path / "f.bin", retries=1), timeout=15)
    assert outcome.kind == kind and words in outcome.message and "\n" not in outcome.message, outcome
    assert outcome.message.count(hostile_server.url) == 1


# --- the cache is never poisoned ---------------------------------------------------------------------------


def test_a_failed_convert_from_file_records_and_keeps_nothing(mirror, fixtures, tmp_path) -> None:
    fake = tmp_path / fixtures["moco-v2"].path.name
    fake.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 40)
    with pytest.raises(errors.NotACheckpointError):
        ssl_zoo.convert_file("moco-v2", fake)
    assert recorded_digests() == {} and leftovers("moco-v2") == []
    assert not cache.download_path("moco-v2", fake.name).exists()
    ssl_zoo.pull("moco-v2")  # the real file is still welcome
    assert recorded_digests() == {f"moco-v2/{fake.name}": sha256(fixtures["moco-v2"].path)}


def test_a_first_download_that_does_not_convert_is_not_recorded(mirror, fixtures) -> None:
    fx = fixtures[R18]
    mirror.add_fault(mirror_path(fx), Fault(body=b"\x00garbage, not a checkpoint" * 100))
    with pytest.raises(errors.NotACheckpointError):
        ssl_zoo.pull(R18)
    assert recorded_digests() == {} and not cache.download_path(R18, fx.path.name).exists()
    ssl_zoo.pull(R18)
    assert recorded_digests()[f"{R18}/{fx.path.name}"] == sha256(fx.path)


def test_user_supplied_entries_take_every_training_run(fixtures, tmp_path) -> None:
    run1 = fixtures["dira"].path
    checkpoint = read_checkpoint(run1)
    checkpoint["epoch"] = 2  # another run of the same recipe: other bytes, same layout
    run2 = tmp_path / "run2.pth"
    torch.save(checkpoint, run2)
    for run in (run1, run2):
        folder = ssl_zoo.convert_file("dira", run)
        config = json.loads((folder / "config.json").read_text())
        assert config["ssl_zoo"]["source_sha256"] == sha256(run)  # provenance, not a pin
    assert not any(key.startswith("dira/") for key in recorded_digests())


def test_a_prefix_pin_and_a_recorded_digest_must_both_match(fixtures, monkeypatch) -> None:
    digest = sha256(fixtures[R18].path)
    pin(monkeypatch, R18, sha256_prefix=digest[:8])
    record_digest(R18, fixtures[R18].path.name, digest[:8] + "0" * 56)  # same prefix, another file
    cached = cache.download_path(R18, fixtures[R18].path.name)
    cached.parent.mkdir(parents=True)
    shutil.copy(fixtures[R18].path, cached)
    with pytest.raises(errors.ChecksumError, match="recorded in"):
        ssl_zoo.pull(R18)


def test_require_hashes_wants_a_full_sha256_not_a_prefix(mirror, fixtures, monkeypatch) -> None:
    pin(monkeypatch, R18, sha256_prefix=sha256(fixtures[R18].path)[:8])
    with pytest.raises(errors.UnpinnedFileError, match="prefix"):
        ssl_zoo.pull(R18, require_hashes=True)


_OPENED: list[str] = []
_WATCHED: list[str] = []


def _count_opens(event: str, args: tuple) -> None:
    if event == "open" and _WATCHED and str(args[0]) == _WATCHED[0]:
        _OPENED.append(str(args[1]))


def test_a_user_file_is_read_once_so_the_digest_is_of_what_was_copied(fixtures, tmp_path) -> None:
    user_file = tmp_path / "resnet18.pth"
    shutil.copy(fixtures[R18].path, user_file)
    if _count_opens not in getattr(sys, "_hostile_hooks", ()):
        sys.addaudithook(_count_opens)
        sys._hostile_hooks = (_count_opens,)  # type: ignore[attr-defined]
    _OPENED.clear()
    _WATCHED[:] = [str(user_file)]
    try:
        folder = ssl_zoo.convert_file(R18, user_file)
    finally:
        _WATCHED.clear()
    assert len(_OPENED) == 1
    assert json.loads((folder / "config.json").read_text())["ssl_zoo"]["source_sha256"] == sha256(user_file)


def test_hashes_list_export_and_forget(mirror, fixtures, capsys) -> None:
    ssl_zoo.pull(R18)
    digest = sha256(fixtures[R18].path)
    assert cli_main(["hashes", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["sha256"]) for r in rows] == [(R18, digest)]
    assert cli_main(["hashes", "export"]) == 0
    exported = tomllib.loads(capsys.readouterr().out)
    assert exported[R18]["sources"][0]["sha256"] == digest
    assert exported[R18]["sources"][0]["filename"] == fixtures[R18].path.name
    assert cli_main(["hashes", "forget", R18]) == 0
    assert recorded_digests() == {}


# --- stale temporaries and damaged folders -----------------------------------------------------------------


def make_stale(name: str) -> list[Path]:
    stale = [cache.home() / "models" / f".{name}.tmp-deadbeef", cache.staging_dir(name, "deadbeef")]
    for folder in stale:
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(bytes(1000))
    return stale


def test_stale_temporaries_go_with_the_next_pull_and_with_verify_fix(mirror, capsys) -> None:
    make_stale(R18)
    ssl_zoo.pull(R18)
    assert leftovers(R18) == []
    make_stale("moco-v2")
    cli_main(["verify", "--fix"])
    assert leftovers("moco-v2") == []


@pytest.fixture
def pulled(mirror) -> Path:
    return ssl_zoo.pull(R18)


def test_a_truncated_folder_is_not_cached_and_does_not_load(pulled: Path) -> None:
    weights = pulled / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    [result] = pull_many([R18])
    assert result.status == "failed" and f"ssl-zoo pull {R18} --force" in result.error
    with pytest.raises(errors.ModelFolderError, match="--force"):
        ssl_zoo.load(R18)


def test_a_damaged_header_is_a_typed_error(pulled: Path) -> None:
    weights = pulled / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:12] = b"\xff\xfe{["
    weights.write_bytes(bytes(data))
    with pytest.raises(errors.ModelFolderError, match="--force"):
        ssl_zoo.load_state_dict(R18)


def test_an_edited_weight_is_found_by_verify_on_request(pulled: Path, monkeypatch) -> None:
    weights = pulled / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    ssl_zoo.load_state_dict(R18)  # cheap checks pass: same size, same header
    with pytest.raises(errors.ModelFolderError, match="sha256"):
        ssl_zoo.load_state_dict(R18, verify=True)
    monkeypatch.setenv("SSL_ZOO_VERIFY", "1")
    with pytest.raises(errors.ModelFolderError, match="sha256"):
        ssl_zoo.load(R18)
