"""The input of the analyses (saliency, invariance, reconstruction) as the medical ssl-transfer fork builds it.

Upstream (``jonahanton/SSL_medicalimaging``) opens each image as RGB PIL, resizes its shorter side
(``Resize(size)``), centre-crops, scales to [0,1] (``ToTensor``) and then normalises by the preset's rule
(``preprocess.normalization_for``: "paper" = ImageNet mean/std, none for SimCLR, histogram equalisation for the
MIMIC-CheXpert models; "entry" = the model folder's own mean/std). The rule applied is written with the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:
    from .data import Samples

SPLITS = ("train", "val", "test")


def analysis_normalization(folder: Path, rule: str, in_chans: int = 3) -> dict[str, Any]:
    """``preprocess.normalization_for`` of the model folder: ``{"rule", "applied", "mean", "std", "histogram"}``."""
    from ..modelfolder.files import read_config
    from .preprocess import normalization_for

    return normalization_for(rule, read_config(folder), in_chans)


def normalize_unit(x: Any, norm: dict[str, Any]) -> Any:
    """A [0,1] (C, H, W) tensor normalised as ``norm`` says: histogram equalisation to [0,255], or mean/std.

    One channel (``in_chans=1``) is the crop's luminance, as the preset's pipeline makes it.
    """
    import torch

    from .preprocess import histogram_equalize, match_channels

    x = match_channels(x, len(norm["mean"]))
    if norm["histogram"]:
        return histogram_equalize(x)
    mean, std = (torch.tensor(v, dtype=torch.float32).view(-1, 1, 1) for v in (norm["mean"], norm["std"]))
    return (x - mean) / std


def rgb_image(pixels: np.ndarray) -> Any:
    """uint8 (H, W) or (H, W, 3) pixels as an RGB PIL image (gray replicated), as upstream's ``convert("RGB")``."""
    from PIL import Image

    return Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("RGB")


def resize_crop(image: Any, resize: int, crop: int, interpolation: str = "bicubic") -> Any:
    """torchvision's ``Resize(resize)`` (shorter side) + ``CenterCrop(crop)`` of a PIL image, with PIL as upstream."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    image = F.resize(image, [resize], interpolation=InterpolationMode(interpolation))
    return F.center_crop(image, [crop, crop])


def to_unit(image: Any) -> Any:
    """``ToTensor``: a PIL image -> float (C, H, W) tensor in [0,1]."""
    from torchvision.transforms.v2 import functional as F

    return F.pil_to_tensor(image).float() / 255.0


def unit_crop(pixels: np.ndarray, resize: int, crop: int, interpolation: str = "bicubic") -> Any:
    """The float (3, crop, crop) tensor in [0,1] of uint8 ``pixels``: RGB, resize, centre crop, ``ToTensor``."""
    return to_unit(resize_crop(rgb_image(pixels), resize, crop, interpolation))


def dataset_pool(data: "Samples | dict[str, Samples]", splits: Sequence[str] = ()) -> "tuple[Samples, np.ndarray]":
    """The images a dataset analysis draws from, and their indices in ``data``.

    The medical fork reads a dataset as ``ConcatDataset([train, test])`` (its ``train`` part holds what ssl_zoo
    calls val), so by default every image of every split is in the pool. A dict of splits (``.npz``) becomes one
    ``Samples`` (train, val, test order) whose ``split`` names each image's part. ``splits`` keeps only those
    parts of a dataset with official splits (a card, a CSV ``split`` column, an ``.npz``).

    Args:
        data: ``Samples`` or ``{"train", "val", "test"}`` -> ``Samples``.
        splits: Split names to keep; empty: every image.

    Returns:
        (the pool, the pool's indices in ``data`` (in the concatenation for a dict)).

    Raises:
        SettingError: ``splits`` names an unknown split, or ``data`` has no official splits to choose from.
        DatasetError: No image is left.

    Example:
        >>> pool, where = dataset_pool(read_dataset("eyepacs", root="data/eyepacs"), splits=("test",))
    """
    from ..errors import DatasetError, SettingError

    if isinstance(data, dict):
        data = labelled_concat(data)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise SettingError(f"unknown split {unknown}; choose from {', '.join(SPLITS)} (none: every image)")
    if not splits:
        return data, np.arange(len(data))
    if data.split is None:
        raise SettingError("choosing splits needs a dataset with official splits (a dataset card, a CSV 'split' "
                           "column or an .npz); drop the splits setting to use every image")
    where = np.flatnonzero(np.isin(np.asarray(data.split), list(splits)))
    if not len(where):
        raise DatasetError(f"the dataset has no image in split {'/'.join(splits)}")
    return data.subset(where), where


def labelled_concat(parts: "dict[str, Samples]") -> "Samples":
    """The splits of ``parts`` as one ``Samples`` in train, val, test order, ``split`` naming each image's part."""
    import dataclasses

    from .paper_splits import merge

    named = [dataclasses.replace(parts[k], split=np.full(len(parts[k]), k)) for k in SPLITS if k in parts]
    pool = named[0]
    for part in named[1:]:
        pool = merge(pool, part)
    return pool


def split_counts(data: "Samples") -> dict[str, int] | None:
    """Images per split of ``data`` (None without official splits): what a record says the draw came from."""
    if data.split is None:
        return None
    names, counts = np.unique(np.asarray(data.split), return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}
