"""Masks of the segmentation protocol: reading (binary or multi-class; augmented by ``segment_augment``),
probabilities, BenchmarkTransfer's Dice loss, and per-image Dice / IoU.

Mask convention: ``classes`` foreground classes. With 1 (binary) a pixel is foreground when its mask value is > 0
(an RGB mask by its largest channel); with K > 1 the mask holds class ids 0..K (0 background) and the U-Net has K + 1
outputs (softmax). Losses and metrics look at the foreground channels: (N, K, H, W) probabilities against the one-hot
foreground of the ids.

Metrics per image and foreground class, from true/false positives of the prediction (binary: probability > 0.5;
multi-class: the argmax class): ``Dice = 2TP / (2TP + FP + FN)``, ``IoU = TP / (TP + FP + FN)``. **Empty rule:** a
class empty in both prediction and target scores 1.0 (BenchmarkTransfer's ``dice`` returns 1.0 for empty vs empty);
an empty target with a non-empty prediction scores 0. An image's value is the mean over its foreground classes.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import DatasetError
from .data import Samples, load_item
from .segment_augment import augment_pair


def dice_loss(probs: Any, masks: Any) -> Any:
    """``1 - (2 sum(y p) + 1) / (sum(y) + sum(p) + 1)`` over the whole batch (BenchmarkTransfer's Dice loss)."""
    return 1 - (2 * (probs * masks).sum() + 1) / (masks.sum() + probs.sum() + 1)


def foreground(masks: Any, classes: int) -> Any:
    """(N, K, H, W) 0/1 foreground of (N, 1, H, W) masks: the mask itself (binary) or the one-hot of ids 1..K."""
    import torch.nn.functional as F

    if classes == 1:
        return masks
    return F.one_hot(masks[:, 0].long(), classes + 1).permute(0, 3, 1, 2)[:, 1:].to(masks.dtype)


def probabilities(logits: Any, classes: int) -> Any:
    """Foreground probabilities (N, K, H, W): sigmoid (binary) or the softmax's foreground channels."""
    return logits.float().sigmoid() if classes == 1 else logits.float().softmax(1)[:, 1:]


def predicted(probs: Any, classes: int) -> Any:
    """Hard (N, K, H, W) foreground predictions: probability > 0.5, or the argmax class (background included)."""
    import torch

    if classes == 1:
        return (probs > 0.5).to(probs.dtype)
    background = 1 - probs.sum(1, keepdim=True)
    winner = torch.cat([background, probs], 1).argmax(1, keepdim=True)
    return foreground(winner.to(probs.dtype), classes)


def dice_iou(probs: Any, masks: Any, classes: int = 1) -> tuple[Any, Any]:
    """Per-image Dice and IoU (N,) of foreground probabilities against 0/1 foreground masks (module docstring)."""
    import torch

    pred, truth = predicted(probs, classes).double(), masks.double()
    tp, fp, fn = ((a * b).flatten(2).sum(-1) for a, b in ((pred, truth), (pred, 1 - truth), (1 - pred, truth)))
    empty = (tp + fp + fn) == 0
    dice = torch.where(empty, 1.0, 2 * tp / (2 * tp + fp + fn).clamp(min=1))
    iou = torch.where(empty, 1.0, tp / (tp + fp + fn).clamp(min=1))
    return dice.mean(1), iou.mean(1)


class MaskDataset:
    """(image tensor, (1, H, W) mask tensor of 0/1 or class ids, resized to the image with nearest neighbours).

    With ``augment_seed`` every item is augmented (``segment_augment.augment_pair``) from one seeded generator; a
    DataLoader worker gets its own, seeded from ``augment_seed`` and the worker's seed (itself drawn from the loader's
    seeded generator), so workers never repeat each other's draws.
    """

    def __init__(self, samples: Samples, transform: Callable, classes: int = 1,
                 augment_seed: int | None = None) -> None:
        self.samples, self.transform, self.classes = samples, transform, classes
        self.augment_seed, self.worker_seed = augment_seed, None
        self.rng = None if augment_seed is None else np.random.default_rng(augment_seed)

    def generator(self) -> np.random.Generator:
        """The augmentation's generator in this process (a worker's own one inside a DataLoader worker)."""
        import torch

        worker = torch.utils.data.get_worker_info()
        if worker is not None and worker.seed != self.worker_seed:
            self.worker_seed = worker.seed
            self.rng = np.random.default_rng([self.augment_seed, worker.seed])
        return self.rng

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch
        import torch.nn.functional as F

        image = self.transform(self.samples.load(index))
        raw = load_item(self.samples.targets[index])
        raw = raw if raw.ndim == 2 else raw.max(-1)
        if self.classes > 1 and raw.max() > self.classes:
            raise DatasetError(f"{self.samples.targets[index]}: mask value {int(raw.max())} is above --classes "
                               f"{self.classes}; masks hold class ids 0..K (0 background)")
        ids = raw > 0 if self.classes == 1 else raw
        mask = torch.as_tensor(np.asarray(ids), dtype=torch.float32)[None, None]
        mask = F.interpolate(mask, size=image.shape[-2:], mode="nearest")[0]
        return augment_pair(image, mask, self.generator()) if self.rng is not None else (image, mask)
