"""What the cache holds for each entry, and checking or exporting it.

Everything here reads ``$SSL_ZOO_HOME`` (see ``ssl_zoo.store.cache``) and never downloads. ``entry_state`` is cheap
(file stats and the checks every load runs) and imports no torch, so ``ssl-zoo list`` can call it for every entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .store import cache
from .store.atomic import copy_atomic, check_output_folder
from .errors import ChecksumError, ModelFolderError, one_line
from .modelfolder.files import check_intact, is_complete, missing_files, verify_folder
from .store.hashes import check_digest, recorded_digest, sha256_file
from .store.sources import trusted_digest
from .registry import Entry, Source, get_entry, list_models



@dataclass(frozen=True)
class CachedFile:
    """One upstream file present in the downloads cache."""

    filename: str
    path: Path
    size: int


@dataclass(frozen=True)
class EntryState:
    """What the cache holds for one entry.

    Attributes:
        name: The registry name.
        files: The entry's upstream files that exist in ``downloads/<name>/`` (unfinished ``.partial`` excluded).
        folder: The model folder path, whether or not it exists.
        folder_complete: Whether the model folder holds every required file.
        user_supplied: Whether the registry entry has no public download.
        problem: Why the model folder fails the cheap checks every load runs (one line saying what to do), or
            None when it passes or does not exist.
    """

    name: str
    files: tuple[CachedFile, ...]
    folder: Path
    folder_complete: bool
    user_supplied: bool = False
    problem: str | None = None

    @property
    def status(self) -> str:
        """One of "converted", "damaged" (the folder fails the cheap checks), "downloaded", "user-supplied" (no
        public file, nothing cached) or "-"."""
        if self.problem:
            return "damaged"
        if self.folder_complete:
            return "converted"
        if self.files:
            return "downloaded"
        return "user-supplied" if self.user_supplied else "-"

    @property
    def cached(self) -> bool:
        """Whether anything of the entry is on disk (a download or a model folder, even an incomplete one)."""
        return bool(self.files) or self.folder.exists()


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one cached item.

    Attributes:
        name: The registry name.
        item: The upstream file or model folder that was checked.
        status: "ok", "mismatch", "missing", or "unchecked" (an upstream file with no pinned or recorded sha256).
        message: One line saying what was found and, for a problem, what to do.
    """

    name: str
    item: Path
    status: str
    message: str

    @property
    def ok(self) -> bool:
        """Whether this item passed (or had nothing to compare with)."""
        return self.status in ("ok", "unchecked")


def entry_state(name: str) -> EntryState:
    """What the cache holds for entry ``name``.

    Args:
        name: A registry name.

    Returns:
        The ``EntryState``; only file stats and the cheap folder checks every load runs (recorded size,
        safetensors header: ``modelfolder.files.check_intact``) are done, nothing is hashed.

    Raises:
        UnknownModelError: If no entry has that name.
    """
    entry = get_entry(name)
    files = tuple(_cached_file(entry.name, s.filename) for s in entry.sources)
    folder = cache.model_dir(entry.name)
    return EntryState(entry.name, tuple(f for f in files if f), folder, is_complete(folder),
                      entry.status == "user-supplied", _folder_problem(folder))


def _folder_problem(folder: Path) -> str | None:
    """Why an existing model folder fails ``check_intact`` (one line), or None when it passes or is absent."""
    if not folder.exists():
        return None
    try:
        check_intact(folder)
    except (ModelFolderError, OSError) as exc:
        return one_line(exc)
    return None


def _cached_file(name: str, filename: str) -> CachedFile | None:
    path = cache.download_path(name, filename)
    return CachedFile(filename, path, path.stat().st_size) if path.is_file() else None


def _pin(source: Source, recorded: str | None) -> str:
    if source.sha256:
        return "pinned by the registry (sha256)"
    if source.sha256_prefix:
        return f"pinned by the registry (sha256 prefix {source.sha256_prefix})"
    return "recorded on first download" if recorded else "not pinned; recorded on first download"


def _source_report(name: str, source: Source) -> dict[str, Any]:
    recorded = recorded_digest(name, source.filename)
    path = cache.download_path(name, source.filename)
    return {"filename": source.filename, "url": source.url, "mirrors": list(source.mirrors), "size": source.size,
            "sha256": source.sha256, "sha256_prefix": source.sha256_prefix, "recorded_sha256": recorded,
            "pin": _pin(source, recorded), "path": str(path), "present": path.is_file()}


def entry_report(name: str) -> dict[str, Any]:
    """Every registry field of an entry, its converter rules, and where its files are on disk (JSON-ready).

    Args:
        name: A registry name.

    Returns:
        A dict of plain values (str, bool, int, None, lists, dicts), in the order ``ssl-zoo info`` shows them.

    Raises:
        UnknownModelError: If no entry has that name.
        RegistryError: If the entry names a converter family that does not exist.
    """
    from .converters.families import get_family  # imports torch

    entry = get_entry(name)
    family = get_family(entry.family)
    state = entry_state(entry.name)
    pre = entry.preprocessing
    return {
        "name": entry.name, "method": entry.method, "arch": entry.arch, "description": entry.description,
        "paper": entry.paper, "paper_url": entry.paper_url, "code_url": entry.code_url, "license": entry.license,
        "non_commercial": entry.non_commercial, "pretraining_data": entry.pretraining_data,
        "preprocessing": {"summary": pre.describe(), **dataclasses.asdict(pre)},
        "status": entry.status, "how_to_get": entry.how_to_get, "format": entry.format, "hf_repo": entry.hf_repo,
        "tags": list(entry.tags), "sources": [_source_report(entry.name, s) for s in entry.sources],
        "converter": {"family": family.name, "summary": family.summary, "rules": family.describe()},
        "cache": {"state": state.status, "downloads_dir": str(cache.downloads_dir(entry.name)),
                  "model_folder": str(state.folder), "model_folder_complete": state.folder_complete,
                  "model_folder_problem": state.problem},
    }


def cached_names() -> list[str]:
    """Sorted names of every entry that has anything in the cache."""
    return [name for name in list_models() if entry_state(name).cached]


def _entries(names: Iterable[str] | None) -> list[Entry]:
    return [get_entry(n) for n in (cached_names() if names is None else names)]


def verify(names: Iterable[str] | None = None) -> list[VerifyResult]:
    """Re-hash the cached upstream files and model folders.

    Upstream files are compared with the registry pin, else the digest recorded on first download; a model
    folder's ``model.safetensors`` with the digest in its ``config.json``. An upstream file that is absent
    while the model folder is complete is not reported: downloads are only a cache of the source.

    Args:
        names: Registry names to check; default every entry that has anything cached.

    Returns:
        One result per checked item; an explicitly named entry with nothing cached gives one "missing" result.

    Raises:
        UnknownModelError: If a name is not in the registry.
    """
    return [result for entry in _entries(names) for result in _verify_entry(entry)]


def _verify_entry(entry: Entry) -> list[VerifyResult]:
    state = entry_state(entry.name)
    if not state.cached:
        return [VerifyResult(entry.name, state.folder, "missing", f"nothing cached: run `ssl-zoo pull {entry.name}`")]
    sources = {s.filename: s for s in entry.sources}
    results = [_verify_file(entry, sources[f.filename], f.path) for f in state.files]
    if state.folder.exists():
        results.append(_verify_folder(entry.name, state.folder))
    return results


def _verify_file(entry: Entry, source: Source, path: Path) -> VerifyResult:
    name = entry.name
    digest = sha256_file(path)
    recorded = trusted_digest(entry, source)
    if not source.pinned and recorded is None:
        return VerifyResult(name, path, "unchecked", f"sha256 {digest[:16]}...: neither pinned nor recorded, "
                            f"nothing to compare with (`ssl-zoo pull {name}` records it)")
    try:
        check_digest(digest, source, recorded, f"{name}/{source.filename}")
    except ChecksumError as exc:
        return VerifyResult(name, path, "mismatch", str(exc))
    origin = "the registry pin" if source.pinned else "the recorded digest"
    return VerifyResult(name, path, "ok", f"sha256 {digest[:16]}... matches {origin}")


def _verify_folder(name: str, folder: Path) -> VerifyResult:
    missing = missing_files(folder)
    if missing:
        return VerifyResult(name, folder, "missing", f"missing {', '.join(missing)}: run `ssl-zoo pull {name} --force`")
    try:
        digest = verify_folder(folder)
    except ModelFolderError as exc:
        return VerifyResult(name, folder, "mismatch", str(exc))
    return VerifyResult(name, folder, "ok", f"model.safetensors sha256 {digest[:16]}... matches config.json")


def export_mirror(dest: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Copy cached upstream files into the mirror layout ``dest/<name>/<filename>`` that SSL_ZOO_MIRROR serves.

    Every source file is re-hashed and checked against its pin or recorded digest before anything is written,
    so a corrupt file is never exported. Files already in ``dest`` with the same sha256 are left alone.

    Args:
        dest: The mirror root (served later as ``file://dest`` or over http(s)).
        names: Registry names to export; default every entry with a downloaded file.

    Returns:
        The paths written (files already up to date are not listed).

    Raises:
        UnknownModelError: If a name is not in the registry.
        FileNotFoundError: If an explicitly named entry's upstream file is not in the downloads cache.
        ChecksumError: If a cached file differs from its pinned or recorded sha256 (nothing is written).
        OutputFolderError: If ``dest`` is a file.
    """
    dest = check_output_folder(Path(dest))
    plan = [_checked_copy(entry, s, dest, names is not None) for entry in _entries(names) for s in entry.sources]
    return [target for src, target, digest in filter(None, plan) if _copy_if_changed(src, target, digest)]


def _checked_copy(entry: Entry, source: Source, dest: Path, required: bool) -> tuple[Path, Path, str] | None:
    src = cache.download_path(entry.name, source.filename)
    if not src.is_file():
        if required:
            raise FileNotFoundError(f"{entry.name}/{source.filename} is not in the downloads cache: "
                                    f"run `ssl-zoo pull {entry.name} --force` first")
        return None
    digest = sha256_file(src)
    check_digest(digest, source, trusted_digest(entry, source), f"{src}")
    return src, dest / entry.name / source.filename, digest


def _copy_if_changed(src: Path, target: Path, digest: str) -> bool:
    if target.is_file() and sha256_file(target) == digest:
        return False
    copy_atomic(src, target)
    return True
