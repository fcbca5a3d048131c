"""The methods' augmentations on the CPU, per sample, on (C, H, W) float tensors in [0, 1], from torch's RNG.

Only torch's RNG is used (no ``random``/NumPy), so seeding it per sample makes every view reproducible.
``recipe_views`` is the CPU path of the generic view recipes (``views.py``); on a GPU the loop draws the same
recipes batched on the device instead.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from .views import CropSpec, ViewRecipe


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
