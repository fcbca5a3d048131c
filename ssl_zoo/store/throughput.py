"""When to give up on a transfer that never finishes: a minimum rate over a window, and a stall budget.

A per-read timeout alone never fires on a server that drips one byte every few seconds, and retries multiply
a silent server's timeout. So one :class:`Watch` follows a URL across its attempts: the transfer aborts when
its rate stays below ``SSL_ZOO_MIN_RATE`` bytes/s for ``SSL_ZOO_RATE_WINDOW`` seconds, and retries stop once
nothing has arrived for ``SSL_ZOO_STALL_TIMEOUT`` seconds (connection attempts and back-off included). Both
keep the ``.partial`` file, so the next pull resumes it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Final

from ..errors import SettingError, StalledDownloadError

__all__ = ["MIN_RATE_ENV", "RATE_WINDOW_ENV", "STALL_ENV", "Pace", "Watch"]

MIN_RATE_ENV: Final = "SSL_ZOO_MIN_RATE"  # bytes per second; 0 turns the rule off
RATE_WINDOW_ENV: Final = "SSL_ZOO_RATE_WINDOW"  # seconds
STALL_ENV: Final = "SSL_ZOO_STALL_TIMEOUT"  # seconds without a byte, across retries
DEFAULTS: Final = {MIN_RATE_ENV: 1024.0, RATE_WINDOW_ENV: 30.0, STALL_ENV: 45.0}


def _setting(name: str) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return DEFAULTS[name]
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0 or (value == 0 and name != MIN_RATE_ENV):
        raise SettingError(f"{name}={text!r} is not a positive number of "
                           f"{'bytes per second' if name == MIN_RATE_ENV else 'seconds'}; unset it for "
                           f"the default {DEFAULTS[name]:g}")
    return value


@dataclass(frozen=True)
class Pace:
    """The rule: ``min_rate`` bytes/s over ``window`` seconds, and ``stall`` seconds without a byte at most."""

    min_rate: float
    window: float
    stall: float

    @classmethod
    def from_env(cls) -> Pace:
        """The rule as the environment sets it (defaults: 1024 B/s over 30 s, 45 s stall budget).

        Raises:
            SettingError: If a variable is not a positive number.

        Example:
            >>> Pace.from_env().stall
            45.0
        """
        return cls(_setting(MIN_RATE_ENV), _setting(RATE_WINDOW_ENV), _setting(STALL_ENV))


@dataclass
class Watch:
    """The progress of one URL across its attempts, checked against a :class:`Pace`.

    Args:
        pace: The rule.
        what: The URL, for messages.
    """

    pace: Pace
    what: str
    last_byte: float = field(default_factory=time.monotonic)
    window_start: float = field(default_factory=time.monotonic)
    window_bytes: int = 0

    def timeout(self, base: float) -> float:
        """Seconds the next connect or read may stay silent: ``base``, the window and the budget left."""
        return max(0.05, min(base, self.pace.window, self.stall_left()))

    def stall_left(self) -> float:
        """Seconds left of the stall budget."""
        return self.pace.stall - (time.monotonic() - self.last_byte)

    def restart_window(self) -> None:
        """Start measuring the rate afresh (a new attempt)."""
        self.window_start, self.window_bytes = time.monotonic(), 0

    def got(self, count: int) -> None:
        """Account for ``count`` bytes just read.

        Raises:
            StalledDownloadError: When the rate over the last window is below the floor.
        """
        now = time.monotonic()
        if count:
            self.last_byte = now
        self.window_bytes += count
        elapsed = now - self.window_start
        if elapsed < self.pace.window:
            return
        rate = self.window_bytes / elapsed
        if rate < self.pace.min_rate:
            raise StalledDownloadError(
                f"{self.what}: {rate:.0f} B/s over {elapsed:.0f} s, below the {self.pace.min_rate:g} B/s floor "
                f"({MIN_RATE_ENV}, {RATE_WINDOW_ENV}); the partial file is kept: pull again to resume")
        self.restart_window()

    def give_up(self, failure: object) -> StalledDownloadError | None:
        """The error to stop retrying with, once the stall budget is spent; else None."""
        if self.stall_left() > 0:
            return None
        return StalledDownloadError(
            f"{self.what}: nothing arrived for {self.pace.stall:g} s ({failure}; {STALL_ENV}); the partial file is "
            "kept: pull again to resume, or set SSL_ZOO_MIRROR")
