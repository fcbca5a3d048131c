"""Progress bars: one rule for every long operation (downloads, conversions, bundles, evaluation, pre-training).

A bar is drawn when the caller asked for it (``progress=True``, the default everywhere), ``SSL_ZOO_QUIET`` is not
set and stderr is a terminal (a log file gets no carriage-return noise). Bars go to stderr, so stdout stays
for results (``--json``). A bar that is not drawn still counts, so code can use it unconditionally.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable

from .store.cache import QUIET_ENV, env_flag


def quiet() -> bool:
    """Whether ``SSL_ZOO_QUIET`` silences progress and notes for the whole process."""
    return env_flag(QUIET_ENV)


def shown(requested: bool) -> bool:
    """Whether to draw a progress bar: asked for, not silenced by ``SSL_ZOO_QUIET``, and stderr is a terminal.

    Args:
        requested: The caller's ``progress`` argument.

    Returns:
        True when a bar should be drawn on stderr.
    """
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(requested and not quiet() and isatty is not None and isatty())


def bar(iterable: Iterable | None = None, *, progress: bool, desc: str, total: float | None = None,
        **options: Any) -> Any:
    """A tqdm bar on stderr (``iterable`` wrapped, or a manual bar to ``update``), drawn when ``shown(progress)``.

    Args:
        iterable: What to iterate over, or None for a bar updated by hand.
        progress: The caller's ``progress`` argument.
        desc: The label in front of the bar.
        total: The expected count (bytes for ``unit="B"``); default ``len(iterable)`` when it has one.
        **options: More tqdm options (``unit``, ``initial``, ``leave``, ``dynamic_ncols``, ...).

    Returns:
        A ``tqdm`` instance.

    Example:
        >>> for batch in bar(loader, progress=True, desc="features"):
        ...     pass
    """
    from tqdm import tqdm

    options.setdefault("leave", False)
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, disable=not shown(progress), **options)


def byte_bar(*, progress: bool, desc: str, total: int | None, initial: int = 0) -> Any:
    """A ``bar`` counting bytes (KiB, MiB, ... on a 1024 divisor)."""
    return bar(progress=progress, desc=desc, total=total, initial=initial, unit="B", unit_scale=True,
               unit_divisor=1024)
