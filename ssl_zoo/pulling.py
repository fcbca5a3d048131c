"""Registry entries into model folders: one, or many in parallel; and a checkpoint the user already has."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .converters.upstream import convert_user_file
from .errors import SslZooError
from .modelfolder.files import is_complete
from .registry import get_entry
from .resolve import entry_folder
from .store import cache


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


def pull(name: str, *, force: bool = False, require_hashes: bool = False, progress: bool = True) -> Path:
    """Make sure the model folder of ``name`` exists: from the Hub or converted from upstream, as
    ``SSL_ZOO_SOURCE`` says (``ssl_zoo.resolve``).

    Args:
        name: A registry name.
        force: Fetch or convert again even if the folder exists.
        require_hashes: Refuse upstream files without a pinned or recorded sha256.
        progress: Show download progress on stderr.

    Returns:
        The model folder ``$SSL_ZOO_HOME/models/<name>``.

    Raises:
        UnknownModelError, SettingError, HubError, DownloadError, OfflineError, ChecksumError, NotACheckpointError,
        ConversionError.

    Example:
        >>> folder = pull("moco-v2")
    """
    return entry_folder(name, force=force, require_hashes=require_hashes, progress=progress)


def convert_file(name: str, path: Path) -> Path:
    """Convert a checkpoint the user already downloaded (it is checked and copied into the cache first).

    Raises:
        FileNotFoundError, ChecksumError, NotACheckpointError, ConversionError.

    Example:
        >>> folder = convert_file("dira", Path("~/Downloads/dira.pth"))
    """
    return convert_user_file(name, path)


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
