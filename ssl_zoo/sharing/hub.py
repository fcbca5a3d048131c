"""Converted model folders from the Hugging Face Hub: ``hf-hub:ORG/REPO[@REV]``, and ``SSL_ZOO_SOURCE``.

huggingface_hub does not check the content of what it downloads, so every folder fetched here is checked
before it is renamed into the cache: ``model.safetensors`` must hash to the sha256 recorded in its
``config.json`` and to the Hub's own LFS sha256 (the ETag); for a registry entry, the upstream file it was
converted from must be the one the registry pins. A branch is resolved to its commit first, so the cached
folder is immutable and a warm load makes no request.

Whether a registry entry comes from here or from upstream (``SSL_ZOO_SOURCE``) is decided in ``ssl_zoo.resolve``.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import __version__
from ..progress import shown
from ..store import cache
from ..store.atomic import write_text_atomic
from ..errors import ChecksumError, HubError, OfflineError, one_line
from ..modelfolder.files import REQUIRED, WEIGHTS, is_complete, read_config
from ..modelfolder.files import replace_dir  # the same swap-in that conversions use
from ..store.hashes import check_digest, recorded_digest, sha256_file
from ..registry import Entry
from ..extras import extra_imports

HUB_PREFIX = "hf-hub:"
# Only a registry entry has an upstream file to convert instead; a user's own repository has none.
UPSTREAM_HINT = ", or set SSL_ZOO_SOURCE=upstream to convert the entry's upstream file"
DEFAULT_ENDPOINT = "https://huggingface.co"
REPO_RE = re.compile(r"^[\w.\-]+/[\w.\-]+$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

def parse_ref(ref: str) -> tuple[str, str]:
    """``"ORG/REPO[@REV]"`` (``hf-hub:`` prefix optional) → ``(repo_id, revision)``; the revision defaults to main.

    Raises:
        HubError: If the text is not of that form.
    """
    text = ref[len(HUB_PREFIX):] if ref.startswith(HUB_PREFIX) else ref
    repo_id, _, revision = text.partition("@")
    if not REPO_RE.match(repo_id) or ".." in repo_id or ".." in revision:
        raise HubError(f"{ref!r} is not a Hub reference: write hf-hub:ORG/REPO or hf-hub:ORG/REPO@REVISION")
    return repo_id, revision or "main"


def endpoint() -> str:
    """The Hub's URL, read from ``HF_ENDPOINT`` at call time (huggingface_hub reads it only when imported)."""
    return os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or DEFAULT_ENDPOINT


def hub_folder(ref: str, *, progress: bool = True) -> Path:
    """The verified local copy of a model folder on the Hub, downloaded on first use.

    Args:
        ref: ``"ORG/REPO"`` or ``"ORG/REPO@REVISION"`` (a branch, tag or commit), with or without ``hf-hub:``.
        progress: Show download progress on stderr.

    Returns:
        ``$SSL_ZOO_HOME/hub/<org>--<repo>/<commit>``.

    Raises:
        HubError: If the Hub cannot be reached (and the branch was never resolved) or lacks the repo or file.
        ChecksumError: If the downloaded weights differ from the sha256 the folder records.

    Example:
        >>> folder = hub_folder("hf-hub:ssl-zoo/resnet50.moco-v2")
    """
    repo_id, revision = parse_ref(ref)
    commit, etag = resolve(repo_id, revision)
    return fetch(repo_id, commit, cache.hub_dir(repo_id) / commit, etag, progress=progress)


def resolve(repo_id: str, revision: str) -> tuple[str, str | None]:
    """The commit ``revision`` points to and the weights' ETag; offline, the commit it last resolved to.

    A commit id is returned as it is, with no request: its folder, once cached, cannot change.
    """
    if COMMIT_RE.match(revision):
        return revision, None
    ref_file = cache.hub_dir(repo_id) / "refs" / quote(revision, safe="")
    if cache.is_offline():
        if ref_file.is_file():
            return _checked_commit(ref_file.read_text().strip(), repo_id), None
        raise OfflineError(f"offline and hf-hub:{repo_id}@{revision} was never fetched: "
                           "unset SSL_ZOO_OFFLINE/HF_HUB_OFFLINE or pin a cached commit with @COMMIT")
    try:
        meta = _file_metadata(repo_id, WEIGHTS, revision)
    except HubError:
        if ref_file.is_file():  # the Hub is unreachable: keep using the commit this branch resolved to last
            return _checked_commit(ref_file.read_text().strip(), repo_id), None
        raise
    commit = _checked_commit(meta.commit_hash or "", repo_id)
    write_text_atomic(ref_file, commit + "\n")
    return commit, meta.etag


def _checked_commit(commit: str, repo_id: str) -> str:
    # The commit id names a cache folder: anything but 40 hex digits could point elsewhere on disk.
    if not COMMIT_RE.match(commit):
        raise HubError(f"{endpoint()} answered {commit[:50]!r} as the commit of hf-hub:{repo_id}, not a commit id: "
                       "is HF_ENDPOINT a Hub?")
    return commit


def _file_metadata(repo_id: str, filename: str, revision: str) -> Any:
    """One HEAD request (no retries: ``auto`` must fall back quickly when the Hub is down)."""
    with extra_imports():
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import httpx

    url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint())
    try:
        meta = get_hf_file_metadata(url, timeout=10, library_name="ssl_zoo", library_version=__version__)
    except (OSError, httpx.HTTPError) as exc:
        raise HubError(f"cannot resolve hf-hub:{repo_id}@{revision} at {endpoint()} ({one_line(exc)}): "
                       "check the repository id, the revision and the connection (a private repository needs HF_TOKEN)") from None
    return meta


def fetch(repo_id: str, commit: str, dest: Path, etag: str | None = None, *, entry: Entry | None = None,
          progress: bool = True, force: bool = False) -> Path:
    """Download the model folder at ``commit`` into ``dest`` unless it is there (or ``force``), verifying it first.

    Args:
        repo_id: ``ORG/REPO``.
        commit: The commit id to download (never a branch: the folder must not change under us).
        dest: The final folder; it appears complete and verified, or not at all.
        etag: The Hub's ETag of ``model.safetensors``; checked when it is a sha256 (an LFS file).
        entry: The registry entry the folder must have been converted for, if any.
        progress: Show download progress on stderr.
        force: Download again even if ``dest`` is complete.

    Raises:
        HubError, ChecksumError, ModelFolderError.
    """
    if is_complete(dest) and not force:
        return dest
    if cache.is_offline():
        raise OfflineError(f"offline and hf-hub:{repo_id}@{commit[:12]} is not cached: unset SSL_ZOO_OFFLINE/"
                           "HF_HUB_OFFLINE, or install it from a bundle (`ssl-zoo bundle install`)")
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        for filename in REQUIRED:
            _download(repo_id, filename, commit, tmp, progress)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping, not part of the folder
        verify_download(tmp, f"hf-hub:{repo_id}@{commit[:12]}", etag, entry)
        replace_dir(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _download(repo_id: str, filename: str, commit: str, folder: Path, progress: bool) -> None:
    with extra_imports():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import httpx

    try:
        hf_hub_download(repo_id, filename, revision=commit, local_dir=folder, endpoint=endpoint(),
                        library_name="ssl_zoo", library_version=__version__, tqdm_class=_tqdm_class(progress))
    except (OSError, httpx.HTTPError) as exc:
        raise HubError(f"downloading {filename} of hf-hub:{repo_id}@{commit[:12]} failed ({one_line(exc)}): "
                       "check the connection and run it again") from None


def _tqdm_class(progress: bool) -> Any:
    """huggingface_hub's bar class, switched off when progress is not wanted."""
    if shown(progress):
        return None
    with extra_imports():
        from huggingface_hub.utils import tqdm

    class Silent(tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "disable": True})

    return Silent


def verify_download(folder: Path, what: str, etag: str | None = None, entry: Entry | None = None) -> str:
    """Check a downloaded model folder before it is trusted; returns the weights' sha256.

    Raises:
        ChecksumError: If the weights differ from ``config.json``'s sha256 or the Hub's LFS sha256, or were
            converted from another upstream file than the one the registry entry pins.
    """
    zoo = read_config(folder).get("ssl_zoo", {})
    recorded = zoo.get("weights_sha256")
    if not isinstance(recorded, str) or not SHA256_RE.match(recorded):
        raise ChecksumError(f"{what}: config.json records no weights_sha256, so the download cannot be checked: "
                            "it is not an ssl_zoo model folder; load it with timm instead")
    digest = sha256_file(folder / WEIGHTS)
    etag = (etag or "").strip('"')
    if digest != recorded or (SHA256_RE.match(etag) and etag != digest):
        raise ChecksumError(f"{what}: model.safetensors has sha256 {digest[:16]}..., but config.json records "
                            f"{recorded[:16]}... (Hub ETag {etag[:16] or '-'}): the file was altered or damaged; "
                            "nothing was kept, report it to the repository owner" + UPSTREAM_HINT * (entry is not None))
    if entry is not None:
        _check_entry_source(zoo, entry, what)
    return digest


def _check_entry_source(zoo: dict[str, Any], entry: Entry, what: str) -> None:
    if zoo.get("name") != entry.name:
        raise ChecksumError(f"{what} holds {zoo.get('name')!r}, not {entry.name!r}: fix hf_repo of [{entry.name}] "
                            "or set SSL_ZOO_SOURCE=upstream")
    recorded = recorded_digest(entry.name, entry.checkpoint.filename)
    check_digest(str(zoo.get("source_sha256", "")), entry.checkpoint, recorded, f"{what} (converted from)")


def entry_hub_folder(entry: Entry, dest: Path, *, force: bool = False, progress: bool = True) -> Path:
    """The model folder of a registry entry from its ``hf_repo``, verified, at ``dest``.

    ``ssl_zoo.resolve.entry_folder`` decides (``SSL_ZOO_SOURCE``) whether this is asked at all.

    Raises:
        HubError, OfflineError: When the Hub cannot be reached or lacks the repository.
        ChecksumError: When the files fail verification or were converted from another upstream file.
    """
    repo_id, revision = parse_ref(entry.hf_repo or "")
    commit, etag = resolve(repo_id, revision)
    return fetch(repo_id, commit, dest, etag, entry=entry, progress=progress, force=force)
