"""``ssl_zoo.transforms(name, framework="monai")``: an entry's preprocessing as MONAI transforms, equal in output.

The steps are those of ``ssl_zoo.preprocessing`` (read its module doc), on channel-first arrays ``(C, H, W)`` /
``(C, D, H, W)`` as MONAI's ``LoadImage(ensure_channel_first=True)`` gives them. MONAI's own transforms are used
where they compute the same thing: ``ScaleIntensityRange`` (the HU window, clipped; the value range),
``NormalizeIntensity`` (per-channel mean/std) and ``EnsureType``. Four steps are ssl_zoo's, as MONAI ``Transform``
subclasses, because MONAI has no equal:

- ``UnitRange``: [0,1] by the input's dtype (uint8 / 255; other integers and floats outside [0,1] min-max);
  MONAI's transforms do not look at the dtype;
- ``Luminance``: colour to one channel with PIL's weights;
- ``ResizeCrop``: the shorter side resized with torchvision's antialiasing (a triangle/cubic filter, what the
  recipes were trained with; MONAI's ``Resize`` smooths with a Gaussian) and a center crop placed as torchvision's
  (MONAI's ``CenterSpatialCrop`` rounds an odd margin the other way);
- ``EqualizeHistogram``: CovidPrognosis' mapping through the left bin edges and cdf / total; MONAI's
  ``HistogramNormalize`` interpolates at bin centres and rescales the cdf min-max.

``keys=`` wraps each step in MONAI's ``Lambdad`` for dictionary samples (images only: the steps interpolate).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from monai.transforms import Compose, EnsureType, Lambdad, NormalizeIntensity, ScaleIntensityRange, Transform
from monai.utils import convert_data_type

from ..intensity import Intensity, scale_to_unit
from ..preprocessing import equalize_histogram, resize_and_crop, to_luminance
from ..registry import Preprocessing


def _tensor(img: Any) -> torch.Tensor:
    return convert_data_type(img, torch.Tensor, dtype=None)[0].as_subclass(torch.Tensor)


class UnitRange(Transform):
    """Intensities to [0,1] as ``ssl_zoo.transforms`` does without a window (by dtype); alpha dropped."""

    def __call__(self, img: Any) -> torch.Tensor:
        array = convert_data_type(img, np.ndarray)[0]
        array = array[:3] if array.shape[0] == 4 else array
        return torch.from_numpy(scale_to_unit(array, Intensity()))


class Luminance(Transform):
    """One channel: colour weighted as PIL's ``convert("L")``; one channel kept."""

    def __call__(self, img: Any) -> torch.Tensor:
        return to_luminance(_tensor(img).float())


class ResizeCrop(Transform):
    """Shorter side resized and center-cropped as torchvision does (random-resized-crop and flip for training)."""

    def __init__(self, pre: Preprocessing, train: bool = False) -> None:
        self.pre, self.train = pre, train

    def __call__(self, img: Any) -> torch.Tensor:
        return resize_and_crop(_tensor(img).float(), self.pre, self.train)


class EqualizeHistogram(Transform):
    """Histogram equalisation to [0,1] over the whole image, as CovidPrognosis' ``HistogramNormalize``."""

    def __call__(self, img: Any) -> torch.Tensor:
        return equalize_histogram(_tensor(img).float())


class ToChannels(Transform):
    """One channel replicated to ``channels``; an image that has them already is kept."""

    def __init__(self, channels: int) -> None:
        self.channels = channels

    def __call__(self, img: Any) -> torch.Tensor:
        x = _tensor(img)
        return x if x.shape[0] == self.channels else x.expand(self.channels, *x.shape[1:]).contiguous()


def array_steps(pre: Preprocessing, *, train: bool, channels: int) -> list[Callable[[Any], Any]]:
    """The MONAI array transforms of ``pre``, in the order of ``ssl_zoo.preprocessing``'s module doc."""
    steps: list[Callable[[Any], Any]] = [
        ScaleIntensityRange(pre.window[0], pre.window[1], 0.0, 1.0, clip=True, dtype=np.float32)
        if pre.window else UnitRange()]
    if pre.grayscale or channels == 1:
        steps.append(Luminance())
    if pre.spatial_dims == 2:
        steps.append(ResizeCrop(pre, train))
    if pre.histogram_equalize:
        steps.append(EqualizeHistogram())
    if pre.value_scale != 1.0:
        steps.append(ScaleIntensityRange(0.0, 1.0, 0.0, pre.value_scale, dtype=np.float32))
    steps.append(ToChannels(channels))
    if pre.normalized:
        mean, std = (pre.mean, pre.std) if channels == len(pre.mean) else \
            ((sum(pre.mean) / len(pre.mean),), (sum(pre.std) / len(pre.std),))
        steps.append(NormalizeIntensity(subtrahend=mean, divisor=std, channel_wise=True, dtype=np.float32))
    steps.append(EnsureType(data_type="tensor", dtype=torch.float32, track_meta=False))
    return steps


def monai_transforms(pre: Preprocessing, *, train: bool, channels: int, keys: Any = None) -> Compose:
    """``ssl_zoo.transforms(..., framework="monai")``: ``pre`` as a MONAI ``Compose``.

    Args:
        pre: The entry's preprocessing record.
        train: Random-resized-crop and flip instead of resize and center crop.
        channels: Output channels (1 or 3).
        keys: Dictionary transforms on these keys; None for array transforms.

    Returns:
        A ``monai.transforms.Compose`` giving a float32 ``torch.Tensor`` (per key, with ``keys``).

    Example:
        >>> tf = ssl_zoo.transforms("moco-cxr-d121", framework="monai")  # doctest: +SKIP
        >>> tf(dicom.pixel_array[None]).shape                            # doctest: +SKIP
        torch.Size([3, 320, 320])
    """
    steps = array_steps(pre, train=train, channels=channels)
    return Compose([Lambdad(keys, step) for step in steps] if keys is not None else steps)
