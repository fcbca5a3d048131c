"""Shared helpers of the benchmarks: a private SSL_ZOO_HOME, interleaved timing, tables and ratio lines.

Every benchmark compares variants measured side by side in the same run and prints ratios; none of them
fails on a slow machine: a missed target prints a ``TARGET MISSED`` line and the script still exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # so `tests.fixtures`, `tests.loopback` and `ssl_zoo` import from a checkout
    sys.path.insert(0, str(REPO_ROOT))

# Variables that would make a benchmark touch the user's cache, a real mirror or change its behaviour.
_ISOLATED_ENV = ("SSL_ZOO_HOME", "SSL_ZOO_MIRROR", "SSL_ZOO_OFFLINE", "HF_HUB_OFFLINE", "SSL_ZOO_DEBUG", "SSL_ZOO_QUIET")

MiB = 1 << 20


def make_parser(description: str, default_repeat: int) -> argparse.ArgumentParser:
    """A parser with the options every benchmark offers: ``--repeat N`` and ``--quick``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=default_repeat, help=f"timed rounds (default {default_repeat})")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and less data: a smoke run")
    return parser


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """A temporary directory, deleted with everything in it on exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def private_home(home: Path, **extra: str) -> Iterator[Path]:
    """Point ``SSL_ZOO_HOME`` at ``home`` (quiet, no mirror, not offline) and restore the environment after."""
    saved = {name: os.environ.get(name) for name in (*_ISOLATED_ENV, *extra)}
    for name in _ISOLATED_ENV:
        os.environ.pop(name, None)
    os.environ.update({"SSL_ZOO_HOME": str(home), "SSL_ZOO_QUIET": "1", **extra})
    try:
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def time_once(fn: Callable[[], object]) -> float:
    """Seconds one call of ``fn`` takes; its result is dropped before the clock is read back."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict[str, Callable[[], object]], repeat: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time each variant ``repeat`` times, round robin, after ``warmup`` untimed calls of each.

    Round robin spreads slow drifts of the machine (page cache, frequency, other load) over every variant
    instead of charging them to whichever ran last.
    """
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, fn in variants.items():
            times[name].append(time_once(fn))
    return times


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a plain, aligned text table (first column left-aligned, the others right-aligned)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _cell(value: object) -> str:
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def ratio_line(label: str, ratio: float, target: float | None = None) -> bool:
    """Print ``label: ratio`` and, with a target, ``ok`` or a ``TARGET MISSED`` line; return whether it was met."""
    if target is None:
        print(f"{label}: {ratio:.2f}x (for information)")
        return True
    met = ratio <= target
    verdict = "ok" if met else "TARGET MISSED"
    print(f"{label}: {ratio:.2f}x (target <= {target:g}x) {verdict}")
    return met


def machine_line() -> str:
    """One line describing where the numbers were taken."""
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores (load average {load}), "
            f"python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
