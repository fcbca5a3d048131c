"""Paired significance of two models scored on the same test images: paired bootstrap, or DeLong for AUC.

Paired bootstrap: ``resamples`` draws of the test images with replacement (one seeded generator); each draw scores
both models on the *same* images, the statistic being the difference of the metric averaged over trials (the
number the table shows). Two-sided p-value: ``min(1, 2 min(P(d* <= 0), P(d* >= 0)))`` over the draws.

DeLong et al. (1988), binary targets: the AUC of each model from its placement values, their covariance from
the structural components, ``z = (AUC_a - AUC_b) / sqrt(var_a + var_b - 2 cov_ab)``, two-sided normal p-value
(midranks, as Sun & Xu 2014, so ties count one half).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..errors import SettingError
from .metrics import classification_metrics

TESTS = ("bootstrap", "delong")


def midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank."""
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def delong(targets: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> dict[str, float]:
    """DeLong's test of two correlated AUCs on binary ``targets``.

    Returns:
        ``{"auc_a", "auc_b", "z", "p_value"}``.

    Raises:
        SettingError: Targets that are not binary with both classes present.
    """
    from scipy.stats import norm

    targets = np.asarray(targets).reshape(-1)
    positive, negative = targets == 1, targets == 0
    m, n = int(positive.sum()), int(negative.sum())
    if m == 0 or n == 0 or m + n != len(targets):
        raise SettingError("DeLong's test needs binary 0/1 targets with both classes in the test split; "
                           "use --test bootstrap for other tasks")
    aucs, v10, v01 = [], [], []
    for scores in (np.asarray(scores_a, float).reshape(-1), np.asarray(scores_b, float).reshape(-1)):
        ranks, pos_ranks, neg_ranks = midranks(scores), midranks(scores[positive]), midranks(scores[negative])
        aucs.append((ranks[positive].sum() - m * (m + 1) / 2) / (m * n))
        v10.append((ranks[positive] - pos_ranks) / n)  # share of negatives each positive beats
        v01.append(1 - (ranks[negative] - neg_ranks) / m)  # share of positives that beat each negative
    s10, s01 = np.cov(np.stack(v10)), np.cov(np.stack(v01))
    variance = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / m + (s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]) / n
    diff = aucs[0] - aucs[1]
    z = diff / math.sqrt(variance) if variance > 0 else (0.0 if diff == 0 else math.copysign(math.inf, diff))
    return {"auc_a": float(aucs[0]), "auc_b": float(aucs[1]), "z": float(z), "p_value": float(2 * norm.sf(abs(z)))}


def rank_auc(targets: np.ndarray, scores: np.ndarray) -> float:
    """Binary AUC as the Mann-Whitney statistic from midranks (``roc_auc_score``'s value, without its overhead:
    the bootstrap calls it thousands of times); NaN with one class."""
    positive = targets == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m == 0 or n == 0:
        return math.nan
    return float((midranks(scores)[positive].sum() - m * (m + 1) / 2) / (m * n))


def metric_value(task: str, metric: str, targets: np.ndarray, scores: np.ndarray) -> float:
    """``classification_metrics(task, targets, scores)[metric]``, with a fast path for binary tasks."""
    if task == "binary" and metric == "auc":
        return rank_auc(targets, scores)
    if task == "binary" and metric == "accuracy":
        return float(((scores >= 0.5) == targets).mean())
    return classification_metrics(task, targets, scores)[metric]


def trial_mean_metric(task: str, targets: np.ndarray, trials: Sequence[np.ndarray], metric: str,
                      index: np.ndarray) -> float:
    """The metric of each trial's scores on the images ``index``, averaged over trials (NaN trials dropped)."""
    values = [metric_value(task, metric, targets[index], s[index]) for s in trials]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def paired_bootstrap(task: str, targets: np.ndarray, trials_a: Sequence[np.ndarray], trials_b: Sequence[np.ndarray],
                     metric: str, *, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap of the difference of the trial-mean ``metric`` between models a and b.

    Args:
        task: "binary", "multiclass" or "multilabel".
        targets: Test targets (class ids or label matrix).
        trials_a: Model a's test scores, one array per trial.
        trials_b: Model b's, the same trials in the same order.
        metric: "auc" or "accuracy".
        resamples: Bootstrap draws.
        seed: Seed of the draws.

    Returns:
        ``{"difference", "p_value", "resamples"}`` (draws where the metric is undefined are skipped).

    Example:
        >>> paired_bootstrap("binary", y, [scores_a], [scores_b], "auc")["p_value"]
    """
    targets = np.asarray(targets)
    everything = np.arange(len(targets))
    observed = (trial_mean_metric(task, targets, trials_a, metric, everything)
                - trial_mean_metric(task, targets, trials_b, metric, everything))
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        index = rng.integers(0, len(targets), len(targets))
        d = (trial_mean_metric(task, targets, trials_a, metric, index)
             - trial_mean_metric(task, targets, trials_b, metric, index))
        if not math.isnan(d):
            diffs.append(d)
    if not diffs:
        return {"difference": observed, "p_value": math.nan, "resamples": 0}
    d = np.asarray(diffs)
    p = min(1.0, 2 * min(float((d <= 0).mean()), float((d >= 0).mean())))
    return {"difference": float(observed), "p_value": p, "resamples": len(diffs)}
