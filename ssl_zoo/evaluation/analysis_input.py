"""The input of the analyses (saliency, invariance, reconstruction) as the medical ssl-transfer fork builds it.

Upstream (``jonahanton/SSL_medicalimaging``) opens each image as RGB, resizes its shorter side (``Resize(size)``),
centre-crops, scales to [0,1] and then normalises by the *paper's* rule: ImageNet mean/std for every model,
none for SimCLR (``--no-norm``), histogram equalisation to [0,255] for the MIMIC-CheXpert models. The rule
"entry" uses the registry entry's own recipe instead (e.g. SwAV's red std of 0.228). Either way the choice is
written into the results record (``normalisation_record``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RULES = ("paper", "entry")


@dataclass(frozen=True)
class Normalisation:
    """What follows the [0,1] crop: mean/std (None: nothing) or histogram equalisation to [0,255].

    Attributes:
        rule: "paper" or "entry": how it was chosen.
        mean: Per-channel mean, or None.
        std: Per-channel std, or None.
        histogram: Histogram equalisation scaled to [0,255] instead of mean/std.
    """

    rule: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    histogram: bool = False

    def __call__(self, x: Any) -> Any:
        """The normalised copy of a (C, H, W) tensor in [0,1]."""
        from ..preprocessing import equalize_histogram, normalize

        if self.histogram:
            return equalize_histogram(x) * 255.0
        return x.clone() if self.mean is None else normalize(x, self.mean, self.std)

    def record(self) -> dict[str, Any]:
        """The JSON form written with the results."""
        return {"rule": self.rule, "mean": self.mean, "std": self.std, "histogram_equalisation": self.histogram}


def input_normalisation(ref: str | Path, rule: str = "paper") -> Normalisation:
    """The normalisation of ``ref``'s input under ``rule``.

    Args:
        ref: A registry name or a model folder.
        rule: "paper" (ImageNet mean/std; none where the entry feeds [0,1] as SimCLR does; histogram equalisation
            where the entry equalises, as the MIMIC-CheXpert models do) or "entry" (the entry's own mean/std).

    Raises:
        SettingError: An unknown rule.

    Example:
        >>> input_normalisation("moco-v2").mean
        (0.485, 0.456, 0.406)
    """
    from ..preprocessing import preprocessing_of

    if rule not in RULES:
        raise SettingError(f"unknown normalisation rule {rule!r}; use one of {', '.join(RULES)}")
    pre = preprocessing_of(str(ref))
    if pre.histogram_equalize:
        return Normalisation(rule, histogram=True)
    if not pre.normalized:
        return Normalisation(rule)
    if rule == "entry":
        return Normalisation(rule, tuple(pre.mean), tuple(pre.std))
    return Normalisation(rule, IMAGENET_MEAN, IMAGENET_STD)


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
