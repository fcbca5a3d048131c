"""Invariance of features to image transforms (SSL_medicalimaging ``invariances.py``, after Ericsson et al.).

For each transform, every image's clean features ``f`` are compared with those of its transformed copies ``g``:
Mahalanobis distance ``sqrt((f - g)^T S^-1 (f - g))`` with ``S`` the feature covariance of the clean images plus
``eps * I``, and the cosine similarity of the whitened, mean-centred features ``(mu - f) L`` and ``(mu - g) L``
(``L`` the Cholesky factor of ``S^-1``). Reported: the mean over images and copies per transform.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..progress import bar
from .backbone import load_backbone
from .data import Samples
from .preprocess import build_transform
from .results import write_json


def default_transforms(size: int) -> dict[str, Callable[[Any], Any]]:
    """Named random transforms of a (C, size, size) tensor, from torchvision."""
    from torchvision.transforms import v2

    return {"rotation": v2.RandomRotation(30), "horizontal_flip": v2.RandomHorizontalFlip(1.0),
            "resized_crop": v2.RandomResizedCrop(size, scale=(0.5, 1.0), antialias=True),
            "translation": v2.RandomAffine(0, translate=(0.1, 0.1)), "blur": v2.GaussianBlur(5, sigma=(0.1, 2.0))}


def whitening(clean: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, inverse covariance (+ eps I) and the Cholesky factor of the inverse, from clean features."""
    cov = np.cov(clean, rowvar=False) + eps * np.eye(clean.shape[1])
    inv = np.linalg.inv(cov)
    inv = (inv + inv.T) / 2  # symmetric to rounding, so Cholesky does not fail on it
    return clean.mean(0), inv, np.linalg.cholesky(inv)


def invariance_scores(clean: np.ndarray, moved: np.ndarray, mean: np.ndarray, inv_cov: np.ndarray,
                      chol: np.ndarray) -> dict[str, float]:
    """Mean Mahalanobis distance and whitened cosine similarity between rows of ``clean`` and ``moved``."""
    diff = clean - moved
    distance = np.sqrt(np.maximum(np.einsum("nd,de,ne->n", diff, inv_cov, diff), 0))
    a, b = (mean - clean) @ chol, (mean - moved) @ chol
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return {"mahalanobis": float(distance.mean()), "cosine_similarity": float(cosine.mean())}


def features_of(model: Any, tensors: Any, batch_size: int = 64) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return torch.cat([model(tensors[i:i + batch_size]).flatten(1) for i in range(0, len(tensors), batch_size)]
                         ).double().numpy()


def invariance(model: str | Path, data: Samples, *, out_dir: str | Path | None = None,
               transforms: dict[str, Callable] | None = None, copies: int = 8, eps: float = 1e-6, seed: int = 0,
               image_size: int | None = None, in_chans: int = 3, progress: bool = True) -> dict[str, Any]:
    """Per-transform invariance of ``model``'s features on the images of ``data``.

    Returns:
        ``{"model", "copies", "transforms": {name: {"mahalanobis", "cosine_similarity"}}}``; ``invariance.json``.
    """
    import torch

    backbone = load_backbone(model, in_chans=in_chans, progress=progress)
    net = backbone.model.eval()
    transform = build_transform(backbone.folder, net.pretrained_cfg, image_size=image_size, in_chans=in_chans)
    images = torch.stack([transform(data.load(i)) for i in range(len(data))])
    clean = features_of(net, images)
    mean, inv_cov, chol = whitening(clean, eps)
    torch.manual_seed(seed)
    scores = {}
    named = transforms or default_transforms(images.shape[-1])
    for name, move in bar(named.items(), progress=progress, desc="transforms"):
        per_copy = [invariance_scores(clean, features_of(net, torch.stack([move(x) for x in images])), mean, inv_cov,
                                      chol) for _ in range(copies)]
        scores[name] = {k: float(np.mean([p[k] for p in per_copy])) for k in per_copy[0]}
    record = {"model": str(model), "images": len(images), "copies": copies, "eps": eps, "dataset": data.card,
              "transforms": scores}
    if out_dir is not None:
        write_json(Path(out_dir) / "invariance.json", record)
    return record
