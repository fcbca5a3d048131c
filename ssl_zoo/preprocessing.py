"""``ssl_zoo.transforms(name)``: the input pipeline an entry's network expects, as one callable.

The callable takes a PIL image, a numpy array or a torch tensor and returns a float32 tensor ``(C, H, W)``
(``(C, D1, D2, D3)`` for a 3-D entry) ready for the model. Steps, in order:

1. intensities to [0,1] by the entry's intensity recipe (``ssl_zoo.intensity``): clip to its ``window`` and map
   it to [0,1] (CT in Hounsfield units), or "minmax" over the image (the LIDC models' slices); by default
   ``uint8`` is divided by 255, other integer types (a DICOM pixel array, 16-bit PNG) and floats outside
   [0,1] are min-max scaled over the image, floats already in [0,1] are kept;
2. channels: colour reduced to luminance for grayscale entries (or when ``in_chans=1``);
3. geometry (2-D only): resize the shorter side and center-crop at evaluation, random-resized-crop and
   horizontal flip for training;
4. histogram equalisation when the recipe has it, then scaling to ``value_range``;
5. mean/std normalisation, and replication of one channel to the network's channel count.

Reading the file is the caller's job: a DICOM MONOCHROME1 image must be inverted before it gets here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ImageInputError, ModelFolderError, OptionError
from .frameworks import check_framework, require_monai
from .intensity import Intensity, scale_to_unit
from .registry import Preprocessing, get_entry
from .registry.schema import parse_preprocessing
from .resolve import RefKind, reference_kind, resolve_folder

if TYPE_CHECKING:
    import torch

CONFIG_FILE = "config.json"
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, what PIL's convert("L") uses


def transforms(name_or_path: str | Path, *, train: bool = False, in_chans: int | None = None,
               framework: str = "timm", keys: Any = None) -> Callable[[Any], Any]:
    """The preprocessing of a registry entry or a model folder, as a callable.

    Args:
        name_or_path: A registry name (``"moco-cxr-d121"``), ``"hf-hub:ORG/REPO[@REV]"``, ``"local-dir:PATH"`` or a
            model folder holding ``config.json``.
        train: Random-resized-crop and horizontal flip instead of resize and center crop.
        in_chans: Channels of the output; default the entry's ``input_size[0]``. ``1`` keeps X-rays one-channel
            for a model loaded with ``in_chans=1``.
        framework: "timm" (this module's callable, for the networks ``load`` gives by default) or "monai": the
            same steps as a ``monai.transforms.Compose`` of array transforms on channel-first arrays, equal in
            output (``ssl_zoo.frameworks.monai_transforms``).
        keys: With ``framework="monai"``, dictionary transforms applied to these keys of a sample dict.

    Returns:
        A function from a PIL image, a numpy array ((H, W), (H, W, C), or a volume for 3-D entries) or a torch
        tensor ((H, W) or (C, H, W)) to a float32 tensor; with ``framework="monai"`` a MONAI ``Compose``.

    Raises:
        ImageInputError: For ``in_chans`` other than 1 or 3.
        FrameworkError: For a framework other than "timm" and "monai".
        OptionError: For ``keys`` without ``framework="monai"``.
        MissingExtraError: For ``framework="monai"`` without MONAI installed.

    Example:
        >>> tf = ssl_zoo.transforms("moco-cxr-d121")
        >>> tf(pixel_array).shape
        torch.Size([3, 224, 224])
    """
    pre = preprocessing_of(name_or_path)
    channels = in_chans or pre.input_size[0]
    if channels not in (1, 3):
        raise ImageInputError(f"in_chans must be 1 or 3, got {channels}: pass in_chans=1 or leave it unset")
    check_framework(framework)
    if framework == "monai":
        require_monai()
        from .frameworks.monai_transforms import monai_transforms

        return monai_transforms(pre, train=train, channels=channels, keys=keys)
    if keys is not None:
        raise OptionError("keys= makes MONAI dictionary transforms: pass framework='monai' as well")
    return _Pipeline(pre, train, channels)


def preprocessing_of(name_or_path: str | Path) -> Preprocessing:
    """The ``Preprocessing`` record of a registry name (no download needed) or of the ``config.json`` of the folder
    any other reference resolves to (``hf-hub:``, ``local-dir:``, a path)."""
    if reference_kind(name_or_path) is RefKind.NAME:
        return get_entry(str(name_or_path)).preprocessing
    return _folder_preprocessing(resolve_folder(name_or_path))


def _folder_preprocessing(folder: Path) -> Preprocessing:
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise ModelFolderError(f"{folder} has no {CONFIG_FILE}: pass a model folder written by ssl_zoo or a registry name")
    config = json.loads(config_path.read_text())
    block = config.get("ssl_zoo", {})
    if isinstance(block.get("preprocessing_record"), dict):
        return parse_preprocessing(str(config_path), block["preprocessing_record"])
    if block.get("name"):
        return get_entry(block["name"]).preprocessing
    return _from_timm_cfg(config.get("pretrained_cfg", {}))


def _from_timm_cfg(cfg: dict[str, Any]) -> Preprocessing:
    """A folder written by timm alone: its ``pretrained_cfg`` has size, crop fraction and mean/std."""
    size = tuple(cfg.get("input_size", (3, 224, 224)))
    crop_pct = cfg.get("crop_pct", 1.0)
    return Preprocessing(input_size=size, mean=tuple(cfg["mean"]) if "mean" in cfg else None,
                         std=tuple(cfg["std"]) if "std" in cfg else None,
                         interpolation=cfg.get("interpolation", "bilinear"),
                         resize=round(size[-1] / crop_pct) if crop_pct < 1.0 else None)


class _Pipeline:
    """The callable ``transforms`` returns; a class so it pickles into DataLoader workers."""

    def __init__(self, pre: Preprocessing, train: bool, channels: int) -> None:
        self.pre, self.train, self.channels = pre, train, channels

    def __repr__(self) -> str:
        return f"ssl_zoo.transforms({self.pre.describe()}, train={self.train}, channels={self.channels})"

    def __call__(self, image: Any) -> "torch.Tensor":
        x = to_unit_tensor(image, self.pre.intensity_recipe, self.pre.spatial_dims)
        if self.pre.grayscale or self.channels == 1:
            x = to_luminance(x)
        if self.pre.spatial_dims == 2:
            x = resize_and_crop(x, self.pre, self.train)
        if self.pre.histogram_equalize:
            x = equalize_histogram(x)
        x = x * self.pre.value_scale
        if x.shape[0] != self.channels:
            x = x.expand(self.channels, *x.shape[1:]).contiguous()
        if self.pre.normalized:
            x = normalize(x, self.pre.mean, self.pre.std)
        return x


def resize_and_crop(x: "torch.Tensor", pre: Preprocessing, train: bool) -> "torch.Tensor":
    """Step 3 of the module doc: resize the shorter side and center-crop (or random-resized-crop and flip)."""
    from torchvision.transforms import InterpolationMode, v2

    mode = InterpolationMode(pre.interpolation)
    size = list(pre.input_size[1:])
    if train:
        steps = [v2.RandomResizedCrop(size, interpolation=mode, antialias=True), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.Resize(pre.resize or min(size), interpolation=mode, antialias=True), v2.CenterCrop(size)]
    return v2.Compose(steps)(x).clamp_(0.0, 1.0)  # bicubic overshoots; equalisation expects [0,1]


def to_unit_tensor(image: Any, intensity: "Intensity | tuple[float, float] | None",
                   spatial_dims: int = 2) -> "torch.Tensor":
    """``image`` as a float32 channels-first tensor with intensities in [0,1] (step 1 of the module doc).

    ``intensity``: an intensity recipe, a (low, high) window, or None for "auto".
    """
    import numpy as np
    import torch

    array = _as_array(image)
    if array.ndim == spatial_dims:
        array = array[None]
    elif spatial_dims == 2 and array.ndim == 3 and array.shape[-1] in (1, 3, 4) and not isinstance(image, torch.Tensor):
        array = np.moveaxis(array, -1, 0)  # (H, W, C) images from PIL/numpy
    if array.ndim != spatial_dims + 1:
        raise ImageInputError(f"expected a {spatial_dims}-D image (optionally with channels), got shape {array.shape}")
    if array.shape[0] == 4:
        array = array[:3]  # alpha carries no intensity
    if array.dtype == np.bool_:
        return torch.from_numpy(array.astype(np.float32))
    if isinstance(intensity, tuple):
        intensity = Intensity("window", (float(intensity[0]), float(intensity[1])))
    return torch.from_numpy(scale_to_unit(array, intensity or Intensity()))


def _as_array(image: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return image
    if hasattr(image, "mode") and hasattr(image, "convert"):  # a PIL image, without importing PIL up front
        keep = ("L", "RGB", "I", "I;16", "F")
        return np.asarray(image if image.mode in keep else image.convert("RGB"))
    raise ImageInputError(f"cannot read {type(image).__name__} as an image: pass a PIL image, a numpy array or a tensor")


def to_luminance(x: "torch.Tensor") -> "torch.Tensor":
    """One channel: colour weighted as PIL's ``convert("L")``, a single channel kept."""
    if x.shape[0] == 1:
        return x
    weights = x.new_tensor(LUMA).view(3, *([1] * (x.dim() - 1)))
    return (x * weights).sum(0, keepdim=True)


def equalize_histogram(x: "torch.Tensor", bins: int = 256) -> "torch.Tensor":
    """Histogram equalisation to [0,1]: each value mapped through the image's normalised cumulative histogram.

    CovidPrognosis' ``HistogramNormalize`` does the same with 256 bins and scales the result to [0, 255];
    the scaling is left to ``value_range`` here.
    """
    import numpy as np
    import torch

    values = x.numpy().ravel().astype(np.float64)
    counts, edges = np.histogram(values, bins)
    cdf = np.cumsum(counts).astype(np.float64)
    equalized = np.interp(values, edges[:-1], cdf / cdf[-1])
    return torch.from_numpy(equalized.reshape(x.shape).astype(np.float32))


def normalize(x: "torch.Tensor", mean: tuple[float, ...], std: tuple[float, ...]) -> "torch.Tensor":
    """Per-channel ``(x - mean) / std``; a one-channel input uses the average of a three-channel recipe."""
    if x.shape[0] != len(mean):
        mean, std = (sum(mean) / len(mean),), (sum(std) / len(std),)
    shape = (len(mean), *([1] * (x.dim() - 1)))
    return (x - x.new_tensor(mean).view(shape)) / x.new_tensor(std).view(shape)
