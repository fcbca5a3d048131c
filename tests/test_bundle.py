"""Air-gap bundles: create from the cache, install elsewhere; anything damaged or unsafe installs nothing."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

import ssl_zoo
from ssl_zoo import errors
from ssl_zoo.store import cache
from ssl_zoo.sharing.bundles import MANIFEST
from ssl_zoo.cli.main import main
from ssl_zoo.modelfolder.files import verify_folder

from .fakehub import make_model_folder

NAMES = ("supervised-r18", "moco-cxr-r18")


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundlefolders")
    return {name: make_model_folder(root, name) for name in NAMES}


@pytest.fixture
def cached(folders: dict[str, Path]) -> dict[str, Path]:
    """The model folders copied into this test's cache."""
    return {name: shutil.copytree(folder, cache.model_dir(name)) for name, folder in folders.items()}


@pytest.fixture
def bundle(cached: dict[str, Path], tmp_path: Path) -> Path:
    path = tmp_path / "models.tar"
    ssl_zoo.create_bundle(path)
    return path


def move_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Switch to an empty cache, as on the offline machine."""
    home = tmp_path / "offline_home"
    monkeypatch.setenv(cache.HOME_ENV, str(home))
    return home


def installed(home: Path) -> list[str]:
    models = home / "models"
    return sorted(p.name for p in models.iterdir()) if models.exists() else []


def test_create_then_install_on_another_machine(bundle: Path, cached: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST).read())
    assert names[0] == MANIFEST and len(names) == 1 + 3 * len(NAMES)
    assert sorted(manifest["models"]) == sorted(NAMES)
    home = move_home(tmp_path, monkeypatch)
    folders = ssl_zoo.install_bundle(bundle)
    assert installed(home) == sorted(NAMES) and folders == [cache.model_dir(n) for n in sorted(NAMES)]
    for name in NAMES:
        verify_folder(cache.model_dir(name))
        for f in cached[name].iterdir():
            assert (cache.model_dir(name) / f.name).read_bytes() == f.read_bytes()
    assert ssl_zoo.load_state_dict(NAMES[0])  # usable by name with no network


def test_one_flipped_byte_is_refused_and_installs_nothing(bundle: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        member = tar.getmember(f"models/{NAMES[1]}/model.safetensors")  # the last model: earlier ones staged
    data[member.offset_data + member.size // 2] ^= 0x01
    bundle.write_bytes(bytes(data))
    home = move_home(tmp_path, monkeypatch)
    with pytest.raises(errors.BundleError, match="sha256 .* the manifest says"):
        ssl_zoo.install_bundle(bundle)
    assert installed(home) == []  # no model, and no staging folder left behind


def test_a_damaged_header_is_refused(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        member = tar.getmember(f"models/{NAMES[1]}/config.json")
    data[member.offset + 130] ^= 0x01  # inside the size/checksum fields of the tar header
    bundle.write_bytes(bytes(data))
    home = move_home(tmp_path, monkeypatch)
    with pytest.raises(errors.BundleError, match="nothing was installed"):
        ssl_zoo.install_bundle(bundle)
    assert installed(home) == []


def forged_bundle(path: Path, bundle: Path, extra: tarfile.TarInfo, data: bytes = b"") -> Path:
    """A copy of ``bundle`` with one more member appended."""
    with tarfile.open(bundle) as src, tarfile.open(path, "w") as out:
        for member in src:
            out.addfile(member, src.extractfile(member) if member.isreg() else None)
        out.addfile(extra, io.BytesIO(data) if data else None)
    return path


@pytest.mark.parametrize("kind", ["traversal", "symlink", "hardlink", "unlisted"])
def test_unsafe_members_are_refused(kind: str, bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = {"traversal": "models/../../evil.py", "unlisted": f"models/{NAMES[0]}/extra.bin"}.get(
        kind, f"models/{NAMES[0]}/config.json")
    extra = tarfile.TarInfo(name)
    if kind == "symlink":
        extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/passwd"
    elif kind == "hardlink":
        extra.type, extra.linkname = tarfile.LNKTYPE, f"models/{NAMES[0]}/model.safetensors"
    else:
        extra.size = 4
    forged = forged_bundle(tmp_path / f"{kind}.tar", bundle, extra, b"evil" if extra.size else b"")
    home = move_home(tmp_path, monkeypatch)
    with pytest.raises(errors.BundleError, match="refusing the bundle"):
        ssl_zoo.install_bundle(forged)
    assert installed(home) == [] and not (tmp_path / "evil.py").exists()


def test_a_manifest_naming_paths_outside_the_cache_is_refused(tmp_path: Path) -> None:
    manifest = json.dumps({"format": "ssl_zoo-bundle", "version": 1,
                           "models": {"..": {"x": {"size": 1, "sha256": "0" * 64}}}}).encode()
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    with pytest.raises(errors.BundleError, match="unsafe or malformed"):
        ssl_zoo.install_bundle(path)


def test_cli_create_and_install(cached: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "one.tar"
    assert main(["bundle", "create", str(path), "--models", NAMES[0]]) == 0
    out = capsys.readouterr().out
    assert out.split() == [NAMES[0], json.loads((cached[NAMES[0]] / "config.json").read_text())
                           ["ssl_zoo"]["weights_sha256"]]
    assert main(["bundle", "create", str(tmp_path / "x.tar"), "--models", "swav"]) == 1
    assert "ssl-zoo pull swav" in capsys.readouterr().err and not (tmp_path / "x.tar").exists()
    home = move_home(tmp_path, monkeypatch)
    assert main(["bundle", "install", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(cache.model_dir(NAMES[0])) and installed(home) == [NAMES[0]]
    path.write_bytes(b"not a tar at all" * 100)
    assert main(["bundle", "install", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable bundle" in err


def test_a_folder_holding_a_link_is_not_bundled(cached: dict[str, Path], tmp_path: Path) -> None:
    (cached[NAMES[0]] / "notes.txt").symlink_to(tmp_path / "elsewhere.txt")
    with pytest.raises(errors.ModelFolderError, match="links or folders"):
        ssl_zoo.create_bundle(tmp_path / "x.tar", [NAMES[0]])
    assert not (tmp_path / "x.tar").exists()


def killed_install(token: str) -> Path:
    """The staging folder a killed `ssl-zoo bundle install` leaves beside the cache's models."""
    staging = cache.bundle_staging(token)
    (staging / NAMES[0]).mkdir(parents=True)
    (staging / NAMES[0] / "model.safetensors").write_bytes(bytes(1000))
    return staging


def test_verify_fix_removes_what_a_killed_install_left_but_not_a_running_one() -> None:
    from filelock import FileLock

    stale, running = killed_install("deadbeef"), killed_install("0badf00d")
    with FileLock(str(cache.bundle_lock_path(running))):  # another process is installing into it now
        assert main(["verify", "--fix"]) == 0
    assert not stale.exists() and not cache.bundle_lock_path(stale).exists()
    assert running.exists()


def test_the_next_install_removes_a_killed_install(bundle: Path) -> None:
    stale = killed_install("deadbeef")
    ssl_zoo.install_bundle(bundle, progress=False)
    assert not stale.exists() and cache.bundle_stagings() == []
