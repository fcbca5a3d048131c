"""Image preprocessing for evaluation: the registry entry's (``ssl_zoo.transforms``) by default, or a sized one.

``SizedTransform`` is the override (``image_size=``): uint8 pixels -> float tensor in [0, 1], channels matched to
the model, bilinear resize to a square, the model's mean/std. Small sizes keep CPU runs and tests fast.
"""

from __future__ import annotations

from dataclasses import dataclass
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


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# normalisation rules a preset may name; "paper" and "entry" depend on the model (``normalization_for``)
NORMALIZATIONS = ("paper", "entry", "imagenet", "none", "histogram", "chestx-ray")
FIXED_NORMALIZATIONS = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "none": ((0.0,) * 3, (1.0,) * 3),
                        "chestx-ray": ((0.5056,) * 3, (0.252,) * 3)}  # BenchmarkTransferLearning --normalization


@dataclass(frozen=True)
class ImageSettings:
    """The evaluation transform of a preset (shared by the classification protocols' settings).

    Attributes:
        image_size: The centre crop (and training crop) side.
        resize_ratio: Resize to ``int(resize_ratio * image_size)`` before the crop (1.15 in few-shot: 257 for 224).
        resize_mode: "short-side" (``Resize(n)``: the shorter side to n) or "square" (``Resize((n, n))``).
        interpolation: "bicubic" or "bilinear" (the resize's and random-resized-crop's).
        normalization: "paper" (ImageNet mean/std; none for SimCLR entries; histogram equalisation for
            MIMIC-CheXpert entries, as the ssl-transfer medical fork), "entry" (the model folder's own mean/std),
            or a fixed rule: "imagenet", "none", "histogram", "chestx-ray".
    """

    image_size: int = 224
    resize_ratio: float = 1.0
    resize_mode: str = "short-side"
    interpolation: str = "bicubic"
    normalization: str = "paper"


def normalization_for(rule: str, folder_config: dict, in_chans: int = 3) -> dict[str, Any]:
    """The normalisation ``rule`` means for a model: ``{"rule", "applied", "mean", "std", "histogram"}``.

    Args:
        rule: One of ``NORMALIZATIONS``.
        folder_config: The model folder's ``config.json`` (its ``ssl_zoo`` block names the entry and method).
        in_chans: Model input channels (the entry's mean/std are averaged for one channel).

    Raises:
        PresetError: An unknown rule.
    """
    from ..errors import PresetError
    from ..loading import data_cfg_for

    if rule not in NORMALIZATIONS:
        raise PresetError(f"normalization {rule!r} is not one of {', '.join(NORMALIZATIONS)}")
    applied = paper_rule(folder_config) if rule == "paper" else rule
    if applied == "entry":
        cfg = data_cfg_for(folder_config["pretrained_cfg"], in_chans)
        return {"rule": rule, "applied": "entry", "mean": tuple(cfg["mean"]), "std": tuple(cfg["std"]),
                "histogram": False}
    mean, std = FIXED_NORMALIZATIONS.get(applied, FIXED_NORMALIZATIONS["none"])
    if in_chans == 1:  # a summed one-channel stem sees the RGB average, as ``loading.data_cfg_for``
        mean, std = (float(np.mean(mean)),), (float(np.mean(std)),)
    return {"rule": rule, "applied": applied, "mean": mean, "std": std, "histogram": applied == "histogram"}


def paper_rule(folder_config: dict) -> str:
    """ssl-transfer's rule: "none" for SimCLR (``--no-norm``), "histogram" for MIMIC-CheXpert, else "imagenet"."""
    info = folder_config.get("ssl_zoo", {})
    if "simclr" in str(info.get("method", "")).lower():
        return "none"
    return "histogram" if str(info.get("name", "")).startswith("mimic-chexpert") else "imagenet"


def histogram_equalize(x: Any, bins: int = 256) -> Any:
    """CovidPrognosis ``HistogramNormalize`` on a [0, 1] tensor: values mapped through 255 x the density CDF.

    Like upstream, the output lies in [0, 255] and no mean/std follows.
    """
    import torch

    flat = x.numpy().ravel()
    density, edges = np.histogram(flat, bins, density=True)
    cdf = density.cumsum()
    return torch.tensor(np.interp(flat, edges[:-1], 255 * cdf / cdf[-1]).reshape(x.shape), dtype=torch.float32)


class PaperTransform:
    """A preset's image pipeline: uint8 pixels -> float (C, size, size) tensor, torchvision steps as upstream.

    Evaluation: ``Resize`` (short side or square) + ``CenterCrop``; with ``ten_crop``, ``Resize`` + ``TenCrop`` and a
    (10, C, size, size) stack. Training (``augment``): "rrc-flip" = ``RandomResizedCrop`` + horizontal flip
    (ssl-transfer), "rrc-flip-rot7" adds ``RandomRotation(7)`` (BenchmarkTransferLearning), "none" = evaluation.
    Then ``ToTensor``, channels matched to the model, then histogram equalisation or mean/std.
    """

    def __init__(self, image: ImageSettings, norm: dict[str, Any], *, channels: int = 3, augment: str = "none",
                 ten_crop: bool = False) -> None:
        self.image, self.norm, self.channels, self.augment, self.ten_crop = image, norm, channels, augment, ten_crop
        self.geometry = self._geometry()

    def __repr__(self) -> str:  # part of the feature-cache key: must describe the transform fully
        return (f"PaperTransform({self.image}, norm={self.norm['applied']}, mean={self.norm['mean']}, "
                f"std={self.norm['std']}, channels={self.channels}, augment={self.augment}, ten_crop={self.ten_crop})")

    def _geometry(self) -> Any:
        from torchvision import transforms as T

        size = self.image.image_size
        mode = {"bicubic": T.InterpolationMode.BICUBIC, "bilinear": T.InterpolationMode.BILINEAR}
        interpolation = mode[self.image.interpolation]
        if self.augment != "none":
            steps = [T.RandomResizedCrop(size, interpolation=interpolation), T.RandomHorizontalFlip()]
            return T.Compose(steps + ([T.RandomRotation(7)] if self.augment == "rrc-flip-rot7" else []))
        side = int(self.image.resize_ratio * size + 1e-9)  # int(1.15 * 224) = 257 despite float rounding
        resize = T.Resize((side, side) if self.image.resize_mode == "square" else side, interpolation=interpolation)
        return T.Compose([resize, T.TenCrop(size) if self.ten_crop else T.CenterCrop(size)])

    def __call__(self, image: Any) -> Any:
        import torch
        from PIL import Image
        from torchvision.transforms import functional as TF

        pil = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
        crops = self.geometry(pil)
        tensors = [self._finish(TF.to_tensor(c)) for c in (crops if self.ten_crop else [crops])]
        return torch.stack(tensors) if self.ten_crop else tensors[0]

    def _finish(self, x: Any) -> Any:
        import torch

        x = match_channels(x, self.channels)
        if self.norm["histogram"]:
            return histogram_equalize(x)
        mean, std = (torch.tensor(v, dtype=torch.float32).view(-1, 1, 1) for v in (self.norm["mean"], self.norm["std"]))
        return (x - mean) / std


def paper_transform(folder_config: dict, image: ImageSettings, *, in_chans: int = 3, augment: str = "none",
                    ten_crop: bool = False) -> PaperTransform:
    """The ``PaperTransform`` of ``image`` settings for a model folder's config (normalisation rule resolved).

    Example:
        >>> paper_transform(read_config(folder), resolve("linear").settings).norm["applied"]
        'imagenet'
    """
    norm = normalization_for(image.normalization, folder_config, in_chans)
    return PaperTransform(image, norm, channels=in_chans, augment=augment, ten_crop=ten_crop)
