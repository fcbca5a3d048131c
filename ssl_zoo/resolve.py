"""Any model reference to a model folder on disk, and where a registry entry's folder comes from.

A reference is one of: a registry name (``"moco-v2"``), ``hf-hub:ORG/REPO[@REV]``, ``local-dir:PATH`` or a folder
path. ``load``, ``load_state_dict``, ``pull``, ``transforms``, ``publish`` and every evaluation protocol resolve
through here, so they all accept the same references and follow the same ``SSL_ZOO_SOURCE`` policy:

- ``hub``: a registry entry's folder comes only from its ``hf_repo`` on the Hub (verified);
- ``upstream``: the original file is downloaded and converted, the Hub is never asked;
- ``auto`` (default): the Hub when the entry has an ``hf_repo``, upstream when it has none or the Hub cannot be
  reached (said once per entry and process). A checksum failure is never hidden by a fallback.
"""

from __future__ import annotations

import enum
import os
import warnings
from pathlib import Path

from .converters.upstream import convert_upstream
from .errors import DownloadError, HubError, HubFallbackWarning, SettingError, root_cause
from .modelfolder.files import check_intact, is_complete
from .registry import get_entry
from .sharing.hub import HUB_PREFIX, UPSTREAM_HINT, entry_hub_folder, hub_folder
from .store import cache

LOCAL_PREFIX = "local-dir:"
SOURCES = ("auto", "hub", "upstream")

_announced: set[str] = set()


class RefKind(enum.Enum):
    """What a model reference names."""

    NAME = "name"
    HUB = "hf-hub"
    LOCAL = "local-dir"
    PATH = "path"


def reference_kind(ref: str | Path) -> RefKind:
    """Which kind of reference ``ref`` is, without touching the network or the cache.

    Example:
        >>> reference_kind("hf-hub:org/repo")
        <RefKind.HUB: 'hf-hub'>
    """
    text = str(ref)
    if text.startswith(HUB_PREFIX):
        return RefKind.HUB
    if text.startswith(LOCAL_PREFIX):
        return RefKind.LOCAL
    if isinstance(ref, Path) or "/" in text or os.sep in text or Path(text).is_dir():
        return RefKind.PATH
    return RefKind.NAME


def resolve_folder(ref: str | Path, *, progress: bool = True) -> Path:
    """The model folder a reference names, downloaded or converted on first use.

    Args:
        ref: A registry name, ``"hf-hub:ORG/REPO[@REV]"``, ``"local-dir:PATH"`` or a model folder path.
        progress: Show download progress on stderr.

    Returns:
        The folder (not checked for completeness: ``modelfolder.files.read_config`` says what is missing).

    Raises:
        UnknownModelError, SettingError, HubError, DownloadError, ChecksumError, ConversionError.

    Example:
        >>> resolve_folder("local-dir:~/runs/mine/model")
        PosixPath('/home/me/runs/mine/model')
    """
    kind = reference_kind(ref)
    text = str(ref)
    if kind is RefKind.HUB:
        return hub_folder(text, progress=progress)
    if kind is RefKind.LOCAL:
        return Path(text[len(LOCAL_PREFIX):]).expanduser()
    if kind is RefKind.PATH:
        return Path(text).expanduser()
    return entry_folder(text, progress=progress)


def source_choice() -> str:
    """The value of ``SSL_ZOO_SOURCE`` (default ``auto``).

    Raises:
        SettingError: If it is set to something else than auto, hub or upstream.
    """
    value = os.environ.get(cache.SOURCE_ENV, "").strip().lower() or "auto"
    if value not in SOURCES:
        raise SettingError(f"{cache.SOURCE_ENV}={value!r} is not one of {', '.join(SOURCES)}: set it to one of them")
    return value


def entry_folder(name: str, *, force: bool = False, require_hashes: bool = False, progress: bool = True) -> Path:
    """The model folder of registry entry ``name``, from the Hub or converted from upstream as ``SSL_ZOO_SOURCE`` says.

    Args:
        name: A registry name.
        force: Fetch or convert again even if the folder exists.
        require_hashes: Refuse upstream files without a pinned or recorded sha256.
        progress: Show download progress on stderr.

    Returns:
        ``$SSL_ZOO_HOME/models/<name>``.

    Raises:
        SettingError: On an unknown ``SSL_ZOO_SOURCE``.
        HubError: With ``SSL_ZOO_SOURCE=hub``, when the entry has no ``hf_repo`` or the Hub cannot be reached.
        ChecksumError: When the Hub's or upstream's files fail verification (never silently replaced).
        UnknownModelError, DownloadError, NotACheckpointError, ConversionError: From the upstream path.
    """
    entry = get_entry(name)
    folder = cache.model_dir(entry.name)
    if is_complete(folder) and not force:  # the warm path of every `load`: no lock, no request
        return check_intact(folder)  # cheap: recorded size and header, so a damaged folder is never "cached"
    choice = source_choice()
    if choice == "hub" and not entry.hf_repo:
        raise HubError(f"{entry.name} is not published on the Hub (no hf_repo): set SSL_ZOO_SOURCE=auto or upstream")
    if choice != "upstream" and entry.hf_repo:
        try:
            return entry_hub_folder(entry, folder, force=force, progress=progress)
        except DownloadError as exc:  # unreachable, offline, no such repo; a ChecksumError is never hidden
            if choice == "hub":
                raise HubError(f"{exc}{UPSTREAM_HINT}") from root_cause(exc)
            _announce_fallback(entry.name, str(exc))
    return convert_upstream(entry.name, force=force, require_hashes=require_hashes, progress=progress)


def _announce_fallback(name: str, reason: str) -> None:
    if name not in _announced:
        _announced.add(name)
        warnings.warn(f"{name}: not fetched from the Hub ({reason}); downloading and converting the upstream file "
                      "instead (SSL_ZOO_SOURCE=auto)", HubFallbackWarning, stacklevel=3)
