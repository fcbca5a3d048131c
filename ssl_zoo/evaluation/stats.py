"""Summary of repeated runs: mean, sample standard deviation and a 95 % confidence interval of the mean.

Formula: ``std = sqrt(sum((x - mean)^2) / (n - 1))``; ``half_width = t(0.975, n - 1) * std / sqrt(n)`` with ``t``
the Student t quantile (scipy). With one value std is 0 and the interval is undefined (None).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def t_quantile(n: int) -> float:
    """The two-sided 95 % Student t quantile for ``n`` values (``n - 1`` degrees of freedom)."""
    from scipy.stats import t

    return float(t.ppf(0.975, n - 1))


def summarize(values: Sequence[float], *, ddof: int = 1) -> dict[str, float | int | None]:
    """``{"n", "mean", "std", "ci95", "ci95_low", "ci95_high"}`` of ``values`` (NaN values are dropped).

    ``ddof=0`` reports the population std (``np.std``, as BenchmarkTransferLearning); the interval always uses the
    sample std.

    Example:
        >>> summarize([0.8, 0.9])["ci95"]  # 12.706 * 0.0707 / sqrt(2)
        0.635...
    """
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None, "ci95_low": None, "ci95_high": None}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    half = t_quantile(n) * std / math.sqrt(n) if n > 1 else None
    return {"n": n, "mean": mean, "std": std if ddof == 1 else float(x.std(ddof=ddof)), "ci95": half,
            "ci95_low": None if half is None else mean - half, "ci95_high": None if half is None else mean + half}
