"""Bad inputs and interruptions, end to end: each ends in success or one clear error, with an intact cache."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import ssl_zoo
from ssl_zoo import errors
from ssl_zoo.store import cache
from ssl_zoo.modelfolder.files import is_complete

from .conftest import mirror_path, pin

REPO = Path(__file__).resolve().parent.parent


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_converted(name: str) -> None:
    models = cache.home() / "models"
    assert not cache.model_dir(name).exists()
    assert not models.exists() or not any(p.name.startswith(f".{name}") for p in models.iterdir())


def downloaded_files(name: str) -> list[str]:
    """The files in an entry's download folder, less the inter-process lock files."""
    folder = cache.downloads_dir(name)
    return sorted(p.name for p in folder.iterdir() if not p.name.endswith(".lock")) if folder.exists() else []


def assert_one_line(exc: BaseException) -> None:
    assert "\n" not in str(exc) and len(str(exc)) > 20


def test_dropped_connection_is_resumed(mirror, fixtures) -> None:
    fx = fixtures["moco-v2"]
    mirror.drop_after(mirror_path(fx), nbytes=fx.path.stat().st_size // 2)
    ssl_zoo.pull("moco-v2")
    ranges = [r.range for r in mirror.requests if r.path == mirror_path(fx)]
    assert len(ranges) == 2 and ranges[0] is None and ranges[1].startswith("bytes=")
    assert sha256(cache.download_path("moco-v2", fx.path.name)) == sha256(fx.path)


def test_flipped_byte_against_recorded_digest(mirror, fixtures) -> None:
    fx = fixtures["pcl-v1"]
    ssl_zoo.pull("pcl-v1")  # records the digest in hashes.lock.json
    cache.download_path("pcl-v1", fx.path.name).unlink()
    mirror.flip_byte(mirror_path(fx), offset=1000)
    with pytest.raises(errors.ChecksumError) as info:
        ssl_zoo.pull("pcl-v1", force=True)
    assert_one_line(info.value)
    assert downloaded_files("pcl-v1") == []


def test_pinned_prefix_is_enforced(mirror, fixtures, monkeypatch) -> None:
    fx = fixtures["supervised-r18"]
    pin(monkeypatch, "supervised-r18", sha256_prefix=sha256(fx.path)[:8])
    ssl_zoo.pull("supervised-r18")
    assert is_complete(cache.model_dir("supervised-r18"))


def test_wrong_pinned_hash_leaves_nothing(mirror, monkeypatch) -> None:
    pin(monkeypatch, "supervised-r50", sha256="0" * 64)
    with pytest.raises(errors.ChecksumError):
        ssl_zoo.pull("supervised-r50")
    assert downloaded_files("supervised-r50") == []
    assert_nothing_converted("supervised-r50")


def test_two_processes_pull_once_and_both_succeed(mirror, fixtures) -> None:
    code = "import ssl_zoo; print(ssl_zoo.pull('moco-v1'))"
    env = {**os.environ, "SSL_ZOO_MIRROR": mirror.url, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert mirror.count(mirror_path(fixtures["moco-v1"])) == 1


def test_html_page_instead_of_checkpoint(mirror, fixtures) -> None:
    mirror.serve_html(mirror_path(fixtures["insdis"]))
    with pytest.raises(errors.NotACheckpointError) as info:
        ssl_zoo.pull("insdis")
    assert "html" in str(info.value).lower() and "--from-file" in str(info.value)
    assert_nothing_converted("insdis")


def test_truncated_zip_is_refused(fixtures, tmp_path: Path) -> None:
    source = fixtures["moco-v3"].path
    assert zipfile.is_zipfile(source)
    cut = tmp_path / source.name
    cut.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    with pytest.raises(errors.NotACheckpointError) as info:
        ssl_zoo.convert_file("moco-v3", cut)
    assert_one_line(info.value)
    assert_nothing_converted("moco-v3")


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_runs_nothing(tmp_path: Path, zip_format: bool) -> None:
    marker = tmp_path / "pwned"
    bad = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "evil": Payload(marker)}, bad,
               _use_new_zipfile_serialization=zip_format)
    with pytest.raises(errors.UnsafePickleError):
        ssl_zoo.convert_file("moco-v2", bad)
    assert not marker.exists()
    assert_nothing_converted("moco-v2")


def test_disk_full_during_conversion(mirror, monkeypatch) -> None:
    import safetensors.torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(errors.DiskFullError) as info:
        ssl_zoo.pull("swav")
    assert_one_line(info.value)
    assert_nothing_converted("swav")


def test_interrupt_during_conversion_then_retry(mirror, monkeypatch) -> None:
    import ssl_zoo.modelfolder.files

    real = ssl_zoo.modelfolder.files._write_weights

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ssl_zoo.modelfolder.files, "_write_weights", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ssl_zoo.pull("deepcluster-v2")
    assert_nothing_converted("deepcluster-v2")
    monkeypatch.setattr(ssl_zoo.modelfolder.files, "_write_weights", real)
    assert is_complete(ssl_zoo.pull("deepcluster-v2"))


def test_offline_without_file_says_how_to_supply_it(monkeypatch) -> None:
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    with pytest.raises(errors.OfflineError) as info:
        ssl_zoo.pull("moco-v2")
    message = str(info.value)
    assert "moco_v2_800ep_pretrain.pth.tar" in message and "--from-file" in message
    assert_one_line(info.value)


def test_offline_with_cached_file_converts(mirror, monkeypatch) -> None:
    ssl_zoo.pull("pirl")
    ssl_zoo.pull("pirl")  # second call: already there
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("SSL_ZOO_MIRROR")
    assert ssl_zoo.pull("pirl", force=True) == cache.model_dir("pirl")


def test_require_hashes_refuses_unknown_files(mirror) -> None:
    with pytest.raises(errors.UnpinnedFileError):
        ssl_zoo.pull("infomin", require_hashes=True)
    ssl_zoo.pull("infomin")  # records the digest
    ssl_zoo.pull("infomin", require_hashes=True, force=True)


def test_user_copy_is_checked_against_the_recorded_digest(mirror, fixtures, tmp_path: Path) -> None:
    ssl_zoo.pull("sela-v2")
    other = tmp_path / "selav2_400ep_pretrain.pth.tar"
    other.write_bytes(fixtures["sela-v2"].path.read_bytes() + b"\0")
    with pytest.raises(errors.ChecksumError):
        ssl_zoo.convert_file("sela-v2", other)


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(errors.UnknownModelError) as info:
        ssl_zoo.load("moco-v4")
    assert "moco-v" in str(info.value) and "ssl-zoo list" in str(info.value)
    assert isinstance(info.value, KeyError)
