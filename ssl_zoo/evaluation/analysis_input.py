"""The input of the analyses (saliency, invariance, reconstruction) as the medical ssl-transfer fork builds it.

Upstream (``jonahanton/SSL_medicalimaging``) opens each image as RGB PIL, resizes its shorter side
(``Resize(size)``), centre-crops, scales to [0,1] (``ToTensor``) and then normalises by the preset's rule
(``preprocess.normalization_for``: "paper" = ImageNet mean/std, none for SimCLR, histogram equalisation for the
MIMIC-CheXpert models; "entry" = the model folder's own mean/std). The rule applied is written with the results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


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
