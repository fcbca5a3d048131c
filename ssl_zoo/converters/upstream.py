"""An entry's upstream files into a model folder: downloaded (or the user's own), checked and converted under a lock."""

from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import ConversionError, NotACheckpointError
from ..modelfolder.files import check_intact, is_complete
from ..registry import Entry, get_entry
from ..store import cache
from ..store.leftovers import remove_all
from ..store.sources import Fetched, ensure_source, remember, staged_user_files

# Downloads run in parallel, conversions one at a time: each holds a checkpoint and its output in memory,
# and torch already uses every core for one.
CONVERTING = threading.Lock()


def entry_lock(name: str) -> Any:
    """The inter-process lock of one entry's cache folder (a second process waits, then finds the folder)."""
    from filelock import FileLock

    path = cache.entry_lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def convert_upstream(name: str, *, force: bool = False, require_hashes: bool = False, progress: bool = True) -> Path:
    """Download (or reuse) the upstream files of registry entry ``name`` and convert them into its model folder.

    Args:
        name: A registry name.
        force: Convert again even if the folder exists.
        require_hashes: Refuse upstream files without a full sha256 pinned or recorded.
        progress: Show download progress on stderr.

    Returns:
        ``$SSL_ZOO_HOME/models/<name>``.

    Raises:
        UnknownModelError, DownloadError, OfflineError, ChecksumError, NotACheckpointError, ConversionError.
    """
    entry = get_entry(name)
    folder = cache.model_dir(entry.name)
    with entry_lock(entry.name):
        remove_all(cache.stale_temporaries(entry.name))  # we hold the lock: nobody else is writing them
        if is_complete(folder) and not force:
            return check_intact(folder)
        files = [ensure_source(entry, s, require_hashes=require_hashes, progress=progress) for s in entry.sources]
        try:
            converted = convert_locked(entry, files[0].path, files[0].digest)
        except NotACheckpointError:
            _discard_unverified(files)
            raise
        for fetched in files:
            remember(entry, fetched)  # only now: a file that does not convert is never trusted
        return converted


def convert_user_file(name: str, path: Path) -> Path:
    """Convert a checkpoint the user already downloaded; it enters the cache only if it converts.

    Raises:
        FileNotFoundError, ChecksumError, NotACheckpointError, ConversionError.
    """
    entry = get_entry(name)
    with entry_lock(entry.name):
        remove_all(cache.stale_temporaries(entry.name))
        user = Path(path).expanduser()
        with staged_user_files(entry, user) as files:
            try:
                return convert_locked(entry, files[0].path, files[0].digest)
            except (NotACheckpointError, ConversionError) as exc:
                raise about_user_file(exc, files[0].path, user, entry.name) from None


# what the readers advise about a bad download, and what to do about one's own file instead
_DOWNLOAD_ADVICE = ("check the URL, or delete it and pull again", "delete it and pull again")


def about_user_file(exc: NotACheckpointError | ConversionError, staged: Path, user: Path,
                    name: str) -> NotACheckpointError | ConversionError:
    """The same error, told about the user's file: its path instead of the staged copy's, advice for it."""
    text = str(exc).replace(str(staged), str(user)).replace("ssl-zoo info NAME", f"ssl-zoo info {name}")
    for advice in _DOWNLOAD_ADVICE:
        text = text.replace(advice, f"check that it is the whole file `ssl-zoo info {name}` names")
    return type(exc)(text)


def _discard_unverified(files: list[Fetched]) -> None:
    # bytes no pin or record vouched for, which are not a checkpoint: the next pull downloads them again
    for fetched in files:
        if not fetched.verified:
            fetched.path.unlink(missing_ok=True)


def convert_locked(entry: Entry, path: Path, digest: str) -> Path:
    """``convert_checkpoint`` one at a time in this process, memory handed back to the OS after each."""
    from .convert import convert_checkpoint

    with CONVERTING:
        try:
            return convert_checkpoint(entry, path, digest)
        finally:
            release_free_memory()


def release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it, so pulling many entries would keep growing).

    Legacy checkpoints are unpickled into malloc'd storages; without this, each converted entry leaves its
    size behind in the allocator's free lists.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass
