"""Air-gap bundles: one tar of model folders with a manifest of sha256s, installed only when all of it checks out.

A site with no internet gets its models as one file, made on a connected machine::

    FILE.tar
    ├── ssl_zoo-bundle.json          first member: {"format", "version", "ssl_zoo_version",
    │                                                "models": {name: {file: {"size", "sha256"}}}}
    └── models/<name>/<file>         the files of each model folder, nothing else

``install_bundle`` streams every member into a hidden staging folder beside the cache's models, hashing as it
writes, and refuses the whole bundle on the first surprise: a link, a device, a path outside ``models/<name>/``,
a file the manifest does not list (or lists twice), a wrong size or sha256, or a folder whose weights disagree
with their own ``config.json``. Only then are the folders renamed into ``$SSL_ZOO_HOME/models/`` one by one.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path
from typing import Any, BinaryIO, Iterable

from .. import __version__
from ..store import cache
from ..errors import BundleError, BundleNotFoundError, ModelFolderError, one_line
from ..modelfolder.files import replace_dir  # the same swap-in that conversions use
from ..modelfolder.files import WEIGHTS, folder_files, is_complete, verify_folder
from ..progress import byte_bar
from ..store.atomic import write_atomic
from ..store.hashes import copy_hashing, file_chunks, sha256_file
from ..store.leftovers import bundle_staging, clean_bundle_stagings

MANIFEST = "ssl_zoo-bundle.json"
FORMAT = "ssl_zoo-bundle"
VERSION = 1
MAX_MANIFEST = 16 << 20  # a manifest lists a few files per model: kilobytes
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _cached_folder_names() -> list[str]:
    models = cache.home() / "models"
    if not models.is_dir():
        return []
    return sorted(p.name for p in models.iterdir() if NAME_RE.match(p.name) and is_complete(p))


def _manifest(names: list[str]) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for name in names:
        folder = cache.model_dir(name)
        if not is_complete(folder):
            raise BundleError(f"{name} has no complete model folder in {cache.home()}: "
                              f"run `ssl-zoo pull {name}` first")
        weights_sha256 = verify_folder(folder)  # never bundle weights that disagree with their own record
        files = folder_files(folder)
        odd = [p.name for p in files if not FILE_RE.match(p.name)]
        if odd:
            raise BundleError(f"{folder}: file names {odd} cannot travel in a bundle (letters, digits, '_', '.', '-' "
                              "only): rename or remove them")
        models[name] = {p.name: {"size": p.stat().st_size,
                                 "sha256": weights_sha256 if p.name == WEIGHTS else sha256_file(p)} for p in files}
    return {"format": FORMAT, "version": VERSION, "ssl_zoo_version": __version__, "models": models}


def create_bundle(path: str | Path, names: Iterable[str] | None = None, *, progress: bool = True) -> dict[str, Any]:
    """Write one tar of model folders from the cache, with a manifest of their sha256s.

    Args:
        path: The tar file to write (atomically: it appears complete or not at all).
        names: Model folder names under ``$SSL_ZOO_HOME/models``; default every complete one.
        progress: Show progress on stderr.

    Returns:
        The manifest written into the bundle.

    Raises:
        BundleError: If a named folder is missing or there is nothing to bundle.
        ModelFolderError: If a folder's weights do not match their recorded sha256.

    Example:
        >>> create_bundle("models.tar", ["moco-v2", "swav"])["models"].keys()
        dict_keys(['moco-v2', 'swav'])
    """
    names = sorted(set(names)) if names else _cached_folder_names()
    if not names:
        raise BundleError(f"no model folders in {cache.home()} to bundle: run `ssl-zoo pull NAME` first")
    manifest = _manifest(names)
    write_atomic(Path(path), lambda fh: _write_tar(fh, manifest, progress))
    return manifest


def _write_tar(fh: BinaryIO, manifest: dict[str, Any], progress: bool) -> None:
    total = sum(f["size"] for files in manifest["models"].values() for f in files.values())
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.PAX_FORMAT) as tar, \
            byte_bar(progress=progress, desc="bundle", total=total) as bar:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        tar.addfile(_member(MANIFEST, len(data)), io.BytesIO(data))
        for name, files in manifest["models"].items():
            for filename, info in files.items():
                with open(cache.model_dir(name) / filename, "rb") as src:
                    tar.addfile(_member(f"models/{name}/{filename}", info["size"]), src)
                bar.update(info["size"])


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type = size, 0o644, tarfile.REGTYPE
    return info


def install_bundle(path: str | Path, *, progress: bool = True) -> list[Path]:
    """Verify every file of a bundle, then move its model folders into ``$SSL_ZOO_HOME/models``.

    Args:
        path: A tar written by ``create_bundle`` (``ssl-zoo bundle create``).
        progress: Show progress on stderr.

    Returns:
        The installed model folders (existing folders of the same names are replaced).

    Raises:
        BundleError: On anything unexpected in the tar or any hash mismatch; then nothing is installed.
        BundleNotFoundError: If ``path`` is not a file (also a ``FileNotFoundError``).
    """
    if not Path(path).is_file():
        raise BundleNotFoundError(f"{path} is not a file: give the tar that `ssl-zoo bundle create FILE.tar` wrote "
                                  "on the connected machine; nothing was installed")
    clean_bundle_stagings()  # what killed installs left behind
    with bundle_staging() as staging:  # beside the models, same file system: the final moves are renames
        return _install_from(Path(path), staging, progress)


def _install_from(path: Path, staging: Path, progress: bool) -> list[Path]:
    names = _extract_verified(path, staging, progress)
    for name in names:
        _check_folder(staging / name, path)
    return [_swap_in(staging / name, cache.model_dir(name)) for name in names]


def _swap_in(src: Path, dest: Path) -> Path:
    replace_dir(src, dest)
    return dest


def _check_folder(folder: Path, bundle: str | Path) -> None:
    try:
        verify_folder(folder)
    except ModelFolderError:
        raise BundleError(f"{bundle}: {folder.name}'s weights do not match its config.json: the bundle was made "
                          "from a damaged folder; nothing was installed, make it again") from None


def _extract_verified(path: Path, staging: Path, progress: bool) -> list[str]:
    """Stream every member into ``staging`` with its sha256 checked; returns the model names."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            manifest, first = _read_manifest(tar, path)
            expected = {f"models/{n}/{f}": info for n, files in manifest["models"].items() for f, info in files.items()}
            total = sum(info["size"] for info in expected.values())
            with byte_bar(progress=progress, desc="install", total=total) as bar:
                seen = {_extract_member(tar, m, expected, staging, path, bar) for m in tar
                        if m.offset != first.offset}
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise BundleError(f"{path} is not a readable bundle ({one_line(exc)}): give a file written by "
                          "`ssl-zoo bundle create`, or copy it again; nothing was installed") from None
    missing = sorted(set(expected) - seen)
    if missing:
        raise BundleError(f"{path}: {len(missing)} files of the manifest are missing (e.g. {missing[0]}): "
                          "the bundle is truncated; copy it again, nothing was installed")
    return sorted(manifest["models"])


def _read_manifest(tar: tarfile.TarFile, path: Path) -> tuple[dict[str, Any], tarfile.TarInfo]:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isreg():
        raise BundleError(f"{path} does not start with {MANIFEST}: it is not an ssl_zoo bundle "
                          "(make one with `ssl-zoo bundle create`)")
    if first.size > MAX_MANIFEST:
        raise BundleError(f"{path}: {MANIFEST} is {first.size:,} bytes, more than the {MAX_MANIFEST:,} a manifest "
                          "needs (limit: manifest size): the bundle is damaged or hostile; nothing was installed")
    try:
        manifest = json.loads(tar.extractfile(first).read(MAX_MANIFEST + 1))
    except ValueError:
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON: the bundle is damaged; copy it again") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BundleError(f"{path}: bundle format {manifest.get('format')!r} v{manifest.get('version')} is not "
                          f"{FORMAT} v{VERSION}: install it with the ssl_zoo version that made it")
    _check_manifest_names(manifest.get("models"), path)
    return manifest, first


def _check_manifest_names(models: Any, path: Path) -> None:
    ok = isinstance(models, dict) and bool(models) and all(
        isinstance(name, str) and NAME_RE.match(name) and _valid_files(files) for name, files in models.items())
    if not ok:
        raise BundleError(f"{path}: the manifest lists unsafe or malformed entries: refusing it, nothing was installed")


def _valid_files(files: Any) -> bool:
    """Plain file names, each with an integer size and a sha256: nothing that could point outside its folder."""
    return isinstance(files, dict) and all(
        isinstance(name, str) and FILE_RE.match(name) and isinstance(info, dict)
        and isinstance(info.get("size"), int) and isinstance(info.get("sha256"), str)
        for name, info in files.items())


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, expected: dict[str, Any], staging: Path,
                    path: Path, bar: Any) -> str:
    info = expected.get(member.name)
    if info is None or not member.isreg():
        raise BundleError(f"{path}: member {member.name!r} is {_what_is_wrong(member)}: refusing the bundle, "
                          "nothing was installed")
    if member.size != info["size"]:
        raise BundleError(f"{path}: {member.name} is {member.size} bytes, the manifest says {info['size']}: "
                          "the bundle is damaged; copy it again, nothing was installed")
    _, name, filename = member.name.split("/")
    target = staging / name / filename
    target.parent.mkdir(exist_ok=True)
    if target.exists():
        raise BundleError(f"{path}: {member.name} appears twice: refusing the bundle, nothing was installed")
    digest = _copy_hashing(tar.extractfile(member), target, bar)
    if digest != info["sha256"]:
        raise BundleError(f"{path}: {member.name} has sha256 {digest[:16]}..., the manifest says "
                          f"{info['sha256'][:16]}...: the bundle is damaged; copy it again, nothing was installed")
    return member.name


def _what_is_wrong(member: tarfile.TarInfo) -> str:
    if member.issym() or member.islnk():
        return "a link"
    return "not a regular file" if not member.isreg() else "not in the manifest"


def _copy_hashing(src: BinaryIO, target: Path, bar: Any) -> str:
    with open(target, "wb") as out:
        digest = copy_hashing(file_chunks(src), out, on_chunk=bar.update)[1]
        out.flush()
        os.fsync(out.fileno())  # the folder is renamed into the cache next: its bytes must be on disk first
    return digest.hexdigest()
