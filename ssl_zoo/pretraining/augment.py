"""The methods' augmentations on the CPU, per sample, on (C, H, W) float tensors in [0, 1], from torch's RNG.

Only torch's RNG is used (no ``random``/NumPy), so seeding it per sample makes every view reproducible.
``recipe_views`` is the CPU path of the generic view recipes (``views.py``); on a GPU the loop draws the same
recipes batched on the device instead.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torchvision.transforms import v2

from .views import CropSpec, ViewRecipe, view_recipe


def crop_transform(crop: CropSpec) -> v2.Transform:
    """One crop kind of a view recipe as a per-sample torchvision pipeline (the CPU twin of ``views.make_views``)."""
    steps: list[v2.Transform] = []
    if crop.rotate:
        steps.append(v2.RandomApply([v2.RandomRotation(crop.degrees)], p=crop.rotate))
    steps.append(v2.RandomResizedCrop(crop.size, scale=crop.scale, ratio=crop.ratio, antialias=True))
    if crop.hflip:
        steps.append(v2.RandomHorizontalFlip(crop.hflip))
    if crop.vflip:
        steps.append(v2.RandomVerticalFlip(crop.vflip))
    if crop.jitter_p:
        steps.append(v2.RandomApply([v2.ColorJitter(*crop.jitter)], p=crop.jitter_p))
    if crop.grey:
        steps.append(v2.RandomGrayscale(crop.grey))
    if crop.blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(crop.kernel, sigma=crop.sigma)], p=crop.blur))
    if crop.solarize:
        steps.append(v2.RandomSolarize(0.5, p=crop.solarize))
    return v2.Compose(steps)


class RecipeViews:
    """A view recipe on the CPU: ``views(image, meta)`` -> {key: view}; a class so it pickles into workers."""

    def __init__(self, recipe: ViewRecipe):
        self.recipe = recipe
        self.transforms = [(crop.keys, crop_transform(crop)) for crop in recipe.crops]

    def __call__(self, image: torch.Tensor, meta: dict[str, float]) -> dict[str, torch.Tensor]:
        return {key: transform(image) for keys, transform in self.transforms for key in keys}


def recipe_views(recipe: ViewRecipe) -> RecipeViews:
    """The per-sample CPU views of ``recipe`` (what the data-loader workers run on a CPU run)."""
    return RecipeViews(recipe)


def crop(size: int, scale: tuple[float, float]) -> v2.Transform:
    return v2.RandomResizedCrop(size, scale=scale, antialias=True)


def colour(strength: float = 0.4, hue: float = 0.1, p: float = 0.8, grey: float = 0.2, blur: float = 0.5,
           size: int = 224) -> v2.Transform:
    """Colour jitter, greyscale and Gaussian blur as MoCo-v2 / SimCLR use them (kernel ~10 % of the size)."""
    kernel = max(3, int(0.1 * size) // 2 * 2 + 1)
    steps = [v2.RandomApply([v2.ColorJitter(strength, strength, strength, hue)], p=p)]
    if grey:
        steps.append(v2.RandomGrayscale(p=grey))
    if blur:
        steps.append(v2.RandomApply([v2.GaussianBlur(kernel, sigma=(0.1, 2.0))], p=blur))
    return v2.Compose(steps)


def moco_v2(size: int) -> v2.Transform:
    """MoCo-v2 ``aug-plus``: crop 0.2-1, jitter 0.4/0.1 p 0.8, grey 0.2, blur 0.5, horizontal flip."""
    return crop_transform(view_recipe("moco-v2", size=size).crops[0])


def simclr(size: int, scale: tuple[float, float] = (0.08, 1.0)) -> v2.Transform:
    """SimCLR: crop 0.08-1, flip, jitter 0.8/0.2 p 0.8, grey 0.2, blur 0.5."""
    return crop_transform(replace(view_recipe("simclr", size=size).crops[0], scale=scale))


def intensity(image: torch.Tensor, max_delta: float = 0.3, contrast: tuple[float, float] = (0.7, 1.3)) -> torch.Tensor:
    """Chaitanya et al.'s intensity-only augmentation: random brightness and contrast, clipped to [0, 1.5]."""
    delta = (torch.rand(()) * 2 - 1) * max_delta
    factor = contrast[0] + torch.rand(()) * (contrast[1] - contrast[0])
    mean = image.mean()
    return ((image + delta - mean) * factor + mean).clamp(0, 1.5)


def bezier_intensity(image: torch.Tensor, invert_p: float = 0.5) -> torch.Tensor:
    """Models Genesis' non-linear intensity transform (NL): a random monotone cubic Bézier curve on [0, 1].

    Control points (0,0), (r1,r2), (r3,r4), (1,1); with ``invert_p`` the curve is decreasing. Unlike the
    MAGICAL code this runs on [0, 1] images, before normalisation, so nothing is clamped away.
    """
    points = torch.rand(2, 2)
    t = torch.linspace(0, 1, 1000)
    coeff = torch.stack([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t ** 2 * (1 - t), t ** 3])
    xs = coeff[1] * points[0, 0] + coeff[2] * points[1, 0] + coeff[3]
    ys = coeff[1] * points[0, 1] + coeff[2] * points[1, 1] + coeff[3]
    if torch.rand(()) < invert_p:
        ys = 1 - ys
    order = torch.argsort(xs)
    return _interp(image.clamp(0, 1), xs[order], ys[order])


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    w = ((x - x0) / (x1 - x0).clamp(min=1e-8)).clamp(0, 1)
    return y0 + w * (y1 - y0)


def block_mask(image: torch.Tensor, ratio: float, grid: int = 8) -> torch.Tensor:
    """MAGICAL's masking proxy (M): hide ``ratio`` of a grid of blocks (set to 0).

    The MAGICAL code inverts its block mask so that most of the image is hidden whatever ``mask_ratio`` says;
    here ``ratio`` is the hidden fraction, as its name promises.
    """
    _, h, w = image.shape
    hidden = torch.rand(grid * grid).argsort() < round(ratio * grid * grid)
    mask = hidden.view(1, 1, grid, grid).float()
    mask = torch.nn.functional.interpolate(mask, size=(h, w), mode="nearest")[0]
    return image * (1 - mask)


def dira_distortion(image: torch.Tensor) -> torch.Tensor:
    """DiRA's ``Custom_Distoration``: cut-out (30 %), out-painting (5 %), local shuffling (30 %) or nothing."""
    r = float(torch.rand(()))
    if r <= 0.30:
        return _cutout(image)
    if r <= 0.35:
        return _outpaint(image)
    if r <= 0.65:
        return _local_shuffle(image)
    return image


def _randint(low: int, high: int) -> int:
    return int(torch.randint(low, max(high, low + 1), ()))


def _cutout(image: torch.Tensor) -> torch.Tensor:
    out = image.clone()
    _, h, w = image.shape
    for _ in range(10):
        side = _randint(max(1, h * 10 // 224), max(2, h * 70 // 224))
        y, x = _randint(0, h - side), _randint(0, w - side)
        out[:, y:y + side, x:x + side] = 0
        if torch.rand(()) < 0.1:
            break
    return out


def _outpaint(image: torch.Tensor) -> torch.Tensor:
    out = torch.zeros_like(image)
    _, h, w = image.shape
    for _ in range(_randint(1, 11)):
        side = h - _randint(h * 50 // 224, h * 70 // 224 + 1)
        y, x = _randint(0, h - side), _randint(0, w - side)
        out[:, y:y + side, x:x + side] = image[:, y:y + side, x:x + side]
    return out


def _local_shuffle(image: torch.Tensor) -> torch.Tensor:
    out = image.clone()
    _, h, w = image.shape
    side = max(1, _randint(h * 10 // 224, h * 15 // 224 + 1))
    for _ in range(10):
        y1, x1, y2, x2 = (_randint(0, h - side) for _ in range(4))
        a = out[:, y1:y1 + side, x1:x1 + side].clone()
        out[:, y1:y1 + side, x1:x1 + side] = out[:, y2:y2 + side, x2:x2 + side]
        out[:, y2:y2 + side, x2:x2 + side] = a
    return out


def grey(image: torch.Tensor) -> torch.Tensor:
    """Luminance, one channel."""
    if image.shape[0] == 1:
        return image
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (image * weights).sum(0, keepdim=True)


def fixed_crop(image: torch.Tensor, size: int, bbox_fraction: float = 100 / 192) -> torch.Tensor:
    """Chaitanya et al.'s crop: a random box of ``bbox_fraction`` of the side, resized back to ``size``."""
    _, h, w = image.shape
    side = max(1, int(math.floor(h * bbox_fraction)))
    y, x = _randint(0, h - side), _randint(0, w - side)
    box = image[:, y:y + side, x:x + side].unsqueeze(0)
    return torch.nn.functional.interpolate(box, size=(size, size), mode="bilinear", align_corners=False)[0]
