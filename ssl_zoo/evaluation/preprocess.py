"""Image preprocessing for evaluation: the registry entry's (``ssl_zoo.transforms``) by default, or a sized one.

``SizedTransform`` is the override (``image_size=``): uint8 pixels -> float tensor in [0, 1], channels matched to
the model, bilinear resize to a square, the model's mean/std. Small sizes keep CPU runs and tests fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np


class SizedTransform:
    """uint8 (H, W) / (H, W, 3) array or PIL image -> normalised float (C, size, size) tensor."""

    def __init__(self, size: int, mean: Sequence[float], std: Sequence[float], *, train: bool = False) -> None:
        self.size, self.mean, self.std, self.train = int(size), tuple(mean), tuple(std), train

    def __repr__(self) -> str:  # part of the feature-cache key: must describe the transform fully
        return f"SizedTransform(size={self.size}, mean={self.mean}, std={self.std}, train={self.train})"

    def __call__(self, image: Any) -> Any:
        import torch
        import torch.nn.functional as F

        pixels = torch.from_numpy(np.array(image))  # a copy: PIL and np.load arrays may be read-only
        pixels = pixels[None] if pixels.dim() == 2 else pixels.permute(2, 0, 1)
        x = match_channels(pixels.float() / 255.0, len(self.mean))
        x = F.interpolate(x[None], size=(self.size, self.size), mode="bilinear", antialias=True,
                          align_corners=False)[0]
        if self.train and torch.rand(()) < 0.5:
            x = x.flip(-1)  # horizontal flip: the one augmentation safe for every modality here
        mean, std = (torch.tensor(v).view(-1, 1, 1) for v in (self.mean, self.std))
        return (x - mean) / std


def match_channels(x: Any, channels: int) -> Any:
    """A (C, H, W) tensor with ``channels`` channels: gray repeated to RGB, or RGB averaged to gray."""
    if x.shape[0] == channels:
        return x
    if channels == 1:
        return x.mean(0, keepdim=True)
    return x[:1].expand(channels, -1, -1).clone()


def build_transform(folder: Path, data_cfg: dict, *, image_size: int | None = None, in_chans: int = 3,
                    train: bool = False) -> Callable[[Any], Any]:
    """The preprocessing of a model folder: ``ssl_zoo.transforms(folder)``, or a ``SizedTransform`` when
    ``image_size`` is set.

    Args:
        folder: The model folder the protocol resolved its model reference to (``ssl_zoo.resolve``), so an
            ``hf-hub:`` or ``local-dir:`` reference is not resolved a second time.
        data_cfg: The loaded model's ``pretrained_cfg`` (mean and std per input channel).
        image_size: Square resize to this size instead of the entry's pipeline.
        in_chans: Model input channels.
        train: The entry's training augmentation (registry pipeline) or a random horizontal flip.
    """
    if image_size is None:
        from ..preprocessing import transforms

        return transforms(folder, train=train, in_chans=in_chans)
    return SizedTransform(image_size, data_cfg["mean"], data_cfg["std"], train=train)
