"""Download and convert registry entries: one at a time under a lock, or many in parallel."""

from __future__ import annotations

import ctypes
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .store import cache
from .errors import NotACheckpointError, SslZooError
from .modelfolder.files import check_intact, is_complete
from .registry import Entry, get_entry
from .store.sources import Fetched, ensure_source, remember, staged_user_files


# Downloads run in parallel, conversions one at a time: each holds a checkpoint and its output in memory,
# and torch already uses every core for one.
_CONVERTING = threading.Lock()


@dataclass(frozen=True)
class PullResult:
    """The outcome of pulling one entry."""

    name: str
    status: str  # "converted", "cached" or "failed"
    folder: Path | None
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "failed"


def _entry_lock(name: str):
    from filelock import FileLock

    path = cache.entry_lock_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path))


def pull(name: str, *, force: bool = False, require_hashes: bool = False, progress: bool = True) -> Path:
    """Make sure the model folder of ``name`` exists: download (or reuse) its files and convert them.

    Args:
        name: A registry name.
        force: Convert again even if the folder exists.
        require_hashes: Refuse upstream files without a pinned or recorded sha256.
        progress: Show download progress on stderr.

    Returns:
        The model folder ``$SSL_ZOO_HOME/models/<name>``.

    Raises:
        UnknownModelError, DownloadError, OfflineError, ChecksumError, NotACheckpointError, ConversionError.

    Example:
        >>> folder = pull("moco-v2")
    """
    entry = get_entry(name)
    folder = cache.model_dir(entry.name)
    if is_complete(folder) and not force:  # the warm path of every `load`: no lock needed
        return check_intact(folder)
    with _entry_lock(entry.name):  # a second process waits, then finds the folder complete
        remove_stale_temporaries(entry.name)  # we hold the lock: nobody else is writing them
        if is_complete(folder) and not force:
            return check_intact(folder)
        files = [ensure_source(entry, s, require_hashes=require_hashes, progress=progress) for s in entry.sources]
        try:
            converted = _convert(entry, files[0])
        except NotACheckpointError:
            _discard_unverified(files)
            raise
        for fetched in files:
            remember(entry, fetched)  # only now: a file that does not convert is never trusted
        return converted


def convert_file(name: str, path: Path) -> Path:
    """Convert a checkpoint the user already downloaded; it enters the cache only if it converts.

    Raises:
        FileNotFoundError, ChecksumError, NotACheckpointError, ConversionError.
    """
    entry = get_entry(name)
    with _entry_lock(entry.name):
        remove_stale_temporaries(entry.name)
        with staged_user_files(entry, Path(path).expanduser()) as files:
            return _convert(entry, files[0])


def remove_stale_temporaries(name: str) -> list[Path]:
    """Remove what killed pulls of ``name`` left behind; call it holding the entry's lock. Returns the paths."""
    stale = cache.stale_temporaries(name)
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return stale


def clean_stale(name: str) -> list[Path]:
    """Remove the stale temporaries of ``name`` unless another process is pulling it now (then none).

    Example:
        >>> clean_stale("moco-v2")  # doctest: +SKIP
        [PosixPath('/home/me/.cache/ssl_zoo/models/.moco-v2.tmp-1a2b3c4d')]
    """
    from filelock import Timeout

    try:
        with _entry_lock(name).acquire(timeout=0):
            return remove_stale_temporaries(name)
    except Timeout:
        return []


def _discard_unverified(files: list[Fetched]) -> None:
    # bytes no pin or record vouched for, which are not a checkpoint: the next pull downloads them again
    for fetched in files:
        if not fetched.verified:
            fetched.path.unlink(missing_ok=True)


def _convert(entry: Entry, fetched: Fetched) -> Path:
    from .converters.convert import convert_checkpoint

    with _CONVERTING:
        try:
            return convert_checkpoint(entry, fetched.path, fetched.digest)
        finally:
            _release_free_memory()


def _release_free_memory() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it, so pulling many entries would keep growing).

    Legacy checkpoints are unpickled into malloc'd storages; without this, each converted entry leaves its
    size behind in the allocator's free lists.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass


def _pull_one(name: str, **options: bool) -> PullResult:
    start = time.perf_counter()
    was_there = is_complete(cache.model_dir(name)) and not options.get("force")
    try:
        folder = pull(name, **options)
    except SslZooError as exc:
        return PullResult(name, "failed", None, time.perf_counter() - start, str(exc))
    except OSError as exc:
        return PullResult(name, "failed", None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
    status = "cached" if was_there else "converted"
    return PullResult(name, status, folder, time.perf_counter() - start)


def pull_many(names: Iterable[str], *, jobs: int = 4, **options: bool) -> list[PullResult]:
    """Pull several entries in parallel; a failure of one does not stop the others.

    Args:
        names: Registry names (validated before anything starts).
        jobs: How many entries to work on at once.
        **options: ``force``, ``require_hashes``, ``progress`` as for ``pull``.

    Returns:
        One result per name, in the given order.
    """
    from .store.download import allow_downloads, stop_all

    names = [get_entry(n).name for n in names]
    allow_downloads()
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        return list(pool.map(lambda n: _pull_one(n, **options), names))
    except KeyboardInterrupt:
        stop_all()  # the workers end at their next chunk; their partial files resume next time
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
