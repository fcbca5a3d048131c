"""The statistics of the invariance analysis: whitening from clean features, Mahalanobis distance and whitened
cosine similarity of pairs, and upstream's draw of the covariance images.

``S = cov(F) + eps I`` (``np.cov``, rows = images), ``S^-1`` and its Cholesky factor ``L``; Mahalanobis distance
``sqrt((f - g)^T S^-1 (f - g))`` (scipy's ``mahalanobis``); cosine similarity of ``(mu - f) L`` and ``(mu - g) L``
(torch's ``cosine_similarity``, eps 1e-8). Computed in float64.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError, StatisticWarning


@dataclass
class Whitening:
    """Feature mean, inverse covariance (ridge added) and the Cholesky factor of the inverse."""

    mean: np.ndarray
    inv_cov: np.ndarray
    chol: np.ndarray
    images: int
    warnings: list[str] = field(default_factory=list)


def whitening(features: np.ndarray, eps: float) -> Whitening:
    """``Whitening`` of clean features (rows); warns when the covariance cannot be estimated well.

    Raises:
        DatasetError: Fewer than two images, non-finite features, or a covariance too ill-conditioned to whiten.
    """
    n, dim = features.shape
    if n < 2:
        raise DatasetError(f"the covariance needs at least 2 images, got {n}; give a larger dataset or "
                           f"--covariance-data")
    if not np.isfinite(features).all():
        raise DatasetError("the model gives non-finite features on these images: check the model folder and that "
                           "the images are preprocessed as it expects")
    cov = np.cov(features.astype(np.float64), rowvar=False) + eps * np.eye(dim)
    inv = np.linalg.inv(cov)
    inv = (inv + inv.T) / 2  # symmetric to rounding, so Cholesky accepts it
    notes = []
    if n <= dim:
        notes.append(f"the covariance comes from {n} images of {dim}-dimensional features: it is singular and "
                     f"the {eps:g} ridge dominates, so Mahalanobis distances are inflated and whitened cosines "
                     f"shrink towards 0; give more than {dim} images (--covariance-data) for meaningful values")
        warnings.warn(notes[-1], StatisticWarning, stacklevel=2)
    try:
        chol = np.linalg.cholesky(inv)
    except np.linalg.LinAlgError:  # upstream's Cholesky would stop here too; say why and what helps
        raise DatasetError(f"the covariance of {n} images' {dim}-dimensional features is too ill-conditioned to "
                           f"whiten (its inverse is not positive definite): give more than {dim} images with "
                           "--covariance-data, or a larger ridge (preset setting eps)") from None
    return Whitening(features.mean(0).astype(np.float64), inv, chol, n, notes)


def pair_scores(clean: np.ndarray, moved: np.ndarray, w: Whitening) -> tuple[np.ndarray, np.ndarray]:
    """Per row: Mahalanobis distance of ``clean`` and ``moved`` and cosine similarity of their whitened forms."""
    diff = clean - moved
    distance = np.sqrt(np.maximum(np.einsum("nd,de,ne->n", diff, w.inv_cov, diff), 0))
    a, b = (w.mean - clean) @ w.chol, (w.mean - moved) @ w.chol
    norms = np.maximum(np.linalg.norm(a, axis=1), 1e-8) * np.maximum(np.linalg.norm(b, axis=1), 1e-8)
    return distance, (a * b).sum(1) / norms


def covariance_draw(count: int, rng: np.random.RandomState, minimum: int, share: float) -> np.ndarray:
    """Upstream's covariance images: all when ``count < minimum``, else ``max(minimum, share * count)`` drawn
    with replacement."""
    if count < minimum:
        return np.arange(count)
    return rng.choice(np.arange(count), max(minimum, int(share * count)))
