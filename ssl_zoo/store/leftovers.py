"""Temporary folders in the cache: a bundle install's, held under its lock, and what killed processes left
(conversions, user files, bundle installs), removed only when no live process holds the lock of its owner.

A pull of entry NAME holds ``locks/NAME.lock`` while it writes ``models/.NAME.tmp-*`` and its other temporaries
(``cache.stale_temporaries``); a bundle install holds ``locks/.bundle-<id>.lock`` while it fills
``models/.bundle-<id>/``. A lock that can be taken at once has no living owner, so what it guards is stale.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ssl_zoo.store import cache


def remove_all(paths: list[Path]) -> list[Path]:
    """Remove the folders ``paths`` (call it holding their owner's lock). Returns ``paths``."""
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
    return paths


def remove_unless_locked(lock_path: Path, find: Callable[[], list[Path]]) -> list[Path]:
    """Take ``lock_path`` without waiting and remove what ``find()`` lists then; nothing while another process holds it.

    Args:
        lock_path: The owner's inter-process lock file.
        find: Lists the leftovers; called only once the lock is held, so nothing can appear or go meanwhile.

    Returns:
        The paths removed.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock_path)).acquire(timeout=0):
            return remove_all(find())
    except Timeout:
        return []


def clean_entry(name: str) -> list[Path]:
    """Remove the stale temporaries of entry ``name`` unless another process is pulling it now (then none).

    Example:
        >>> clean_entry("moco-v2")  # doctest: +SKIP
        [PosixPath('/home/me/.cache/ssl_zoo/models/.moco-v2.tmp-1a2b3c4d')]
    """
    return remove_unless_locked(cache.entry_lock_path(name), lambda: cache.stale_temporaries(name))


def clean_bundle_stagings() -> list[Path]:
    """Remove the staging folders of killed bundle installs; those of installs still running are left alone.

    Example:
        >>> clean_bundle_stagings()  # doctest: +SKIP
        [PosixPath('/home/me/.cache/ssl_zoo/models/.bundle-1a2b3c4d')]
    """
    return [path for staging in cache.bundle_stagings() for path in _clean_staging(staging)]


def _clean_staging(staging: Path) -> list[Path]:
    lock = cache.bundle_lock_path(staging)
    removed = remove_unless_locked(lock, lambda: [staging] if staging.exists() else [])
    if not staging.exists():  # its install is over; each install has its own id, so nobody needs the lock again
        lock.unlink(missing_ok=True)
    return removed


@contextmanager
def bundle_staging() -> Iterator[Path]:
    """A fresh, empty bundle staging folder, locked while the block runs and removed (with its lock) after it.

    Example:
        >>> with bundle_staging() as staging:  # doctest: +SKIP
        ...     (staging / "moco-v2").mkdir()
    """
    staging = cache.bundle_staging(uuid.uuid4().hex[:8])
    lock = cache.bundle_lock_path(staging)
    lock.parent.mkdir(parents=True, exist_ok=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(lock)):  # taken before the folder exists: a cleaner never sees it unlocked while in use
            staging.mkdir()
            try:
                yield staging
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    finally:
        lock.unlink(missing_ok=True)  # each install has its own id: nobody needs this lock again
