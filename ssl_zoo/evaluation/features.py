"""Frozen features of a dataset, extracted once and cached on disk.

Cache: ``$SSL_ZOO_HOME/features/<sha256>.npy``; the key covers the model folder (path, config, weight file size
and mtime), the samples (paths with size and mtime, or the pixel bytes) and the transform's repr. A changed
input gives a new key; old files can be deleted at any time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..store import cache
from ..store.atomic import write_atomic
from ..progress import bar
from .backbone import Backbone
from .data import ImageDataset, Samples


def features_path(backbone: Backbone, samples: Samples, transform: Callable) -> Path:
    key = hashlib.sha256(f"{backbone.fingerprint}|{samples.fingerprint()}|{transform!r}|v1".encode()).hexdigest()
    return cache.home() / "features" / f"{key}.npy"


def extract_features(backbone: Backbone, samples: Samples, transform: Callable, *, speed: Any = None,
                     batch_size: int = 64, use_cache: bool = True, progress: bool = True) -> np.ndarray:
    """Pooled features (N, D) float32 of ``samples`` through the frozen ``backbone``.

    Args:
        backbone: From ``load_backbone``.
        samples: The images.
        transform: uint8 pixels -> (C, H, W) tensor.
        speed: ``runtime.Speed``; default ``Speed.fast()``.
        batch_size: Images per forward pass.
        use_cache: Read and write the on-disk cache.
        progress: Show a progress bar on stderr.
    """
    path = features_path(backbone, samples, transform)
    if use_cache and path.is_file():
        return np.load(path)
    feats = compute_features(backbone.model, samples, transform, speed=speed, batch_size=batch_size,
                             progress=progress)
    if use_cache:
        _save(path, feats)
    return feats


def compute_features(model: Any, samples: Samples, transform: Callable, *, speed: Any = None, batch_size: int = 64,
                     progress: bool = True) -> np.ndarray:
    """The uncached forward passes of ``extract_features``."""
    import torch

    from ..runtime import Speed

    speed = speed or Speed.fast()
    net = speed.prepare(model).eval()
    loader = torch.utils.data.DataLoader(ImageDataset(samples, transform), batch_size=batch_size, shuffle=False,
                                         **speed.loader_kwargs())
    chunks = []
    with torch.inference_mode(), speed.numerics():
        for images, _ in bar(loader, progress=progress, desc="features"):
            with speed.autocast():
                chunks.append(net(speed.batch(images)).float().flatten(1).cpu())
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, 0), np.float32)


def _save(path: Path, feats: np.ndarray) -> None:
    write_atomic(path, lambda fh: np.save(fh, feats))  # a reader never sees half an array
