"""The joint-embedding methods' view recipes, and the batched on-device path that draws them.

A ``ViewRecipe`` (from ``views.toml``) lists the crops a method sees per image and each crop's geometric and
photometric settings, as the papers give them. ``make_views`` applies a recipe to a whole batch on the device
with kornia's augmentation module: every parameter (crop box, flips, jitter factors and order, grey, blur
sigma, solarisation) is drawn per sample, on the device, from the same distributions as the per-sample CPU path
``augment.recipe_views``. So on a GPU the data-loader workers only decode and resize.

kornia draws the colour-jitter *order* once per batch (torchvision draws it per image): each image still sees a
uniformly random order, but the images of one batch share it.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from ..errors import UnknownViewRecipeError

if TYPE_CHECKING:
    import torch

RECIPES_FILE = Path(__file__).with_name("views.toml")
REFERENCE_SIZE = 224  # the sizes in views.toml are for 224-px training


@dataclass(frozen=True)
class CropSpec:
    """One kind of augmented crop; every probability is drawn per sample.

    Attributes:
        key: The batch key of the crop ("view0"), or its stem when ``count`` > 1 ("small" -> small0, small1...).
        count: How many crops of this kind each image gives.
        size: Output side in pixels.
        scale: Random-resized-crop area range (fraction of the image).
        ratio: Random-resized-crop aspect-ratio range (log-uniform).
        hflip: Probability of a horizontal flip.  vflip: of a vertical flip.
        rotate: Probability of a rotation uniform in [-degrees, degrees], applied before the crop.
        degrees: Rotation range.
        jitter: Colour-jitter strengths (brightness, contrast, saturation, hue), torchvision's meaning.
        jitter_p: Probability of the colour jitter.
        grey: Probability of converting to grey (kept three-channel).
        blur: Probability of a Gaussian blur with sigma uniform in ``sigma`` (kernel ~10 % of ``size``).
        solarize: Probability of solarisation (values >= 0.5 become 1 - value).
    """

    key: str
    count: int = 1
    size: int = REFERENCE_SIZE
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: float = 0.5
    vflip: float = 0.0
    rotate: float = 0.0
    degrees: float = 0.0
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_p: float = 0.8
    grey: float = 0.2
    blur: float = 0.5
    sigma: tuple[float, float] = (0.1, 2.0)
    solarize: float = 0.0

    @property
    def keys(self) -> tuple[str, ...]:
        """The batch keys of this kind's crops."""
        return (self.key,) if self.count == 1 else tuple(f"{self.key}{i}" for i in range(self.count))

    @property
    def kernel(self) -> int:
        """The blur kernel: odd, about 10 % of the side (23 at 224 px, as SimCLR and BYOL)."""
        return max(3, int(0.1 * self.size) // 2 * 2 + 1)


@dataclass(frozen=True)
class ViewRecipe:
    """The crops one method sees per image (a frozen record of ``views.toml``'s table)."""

    name: str
    crops: tuple[CropSpec, ...]
    source: str = ""

    @property
    def keys(self) -> tuple[str, ...]:
        """Every crop's batch key, in the order ``make_views`` returns them."""
        return tuple(k for crop in self.crops for k in crop.keys)

    def with_count(self, key: str, count: int) -> "ViewRecipe":
        """The recipe with ``count`` crops of kind ``key`` (none: the kind is dropped), so only used crops are drawn.

        Raises:
            UnknownViewRecipeError: When the recipe has no crops of kind ``key``.
        """
        if key not in (crop.key for crop in self.crops):
            raise UnknownViewRecipeError(f"view recipe {self.name!r} has no {key!r} crops; its kinds: "
                                         f"{[crop.key for crop in self.crops]}")
        crops = tuple(replace(c, count=count) if c.key == key else c for c in self.crops)
        return replace(self, crops=tuple(c for c in crops if c.count > 0))

    def at_size(self, size: int) -> "ViewRecipe":
        """The recipe for ``size``-px training: every crop side scaled by ``size / 224`` (at least 16 px)."""
        crops = tuple(replace(c, size=max(16, round(c.size * size / REFERENCE_SIZE))) for c in self.crops)
        return replace(self, crops=crops)


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    with RECIPES_FILE.open("rb") as fh:
        return tomllib.load(fh)


def recipe_names() -> list[str]:
    """The names ``view_recipe`` knows."""
    return sorted(_table())


def view_recipe(name: str, *, size: int = REFERENCE_SIZE) -> ViewRecipe:
    """The view recipe ``name`` ("moco-v2", "simclr", "byol", "barlow-twins", "swav", "wolf-moco", "wolf-swav").

    Args:
        name: A table of ``views.toml``.
        size: The training image size; crop sides scale with it.

    Returns:
        The frozen recipe.

    Raises:
        UnknownViewRecipeError: For a name ``views.toml`` does not define.

    Example:
        >>> [c.size for c in view_recipe("swav").crops]
        [224, 96]
    """
    table = _table()
    if name not in table:
        raise UnknownViewRecipeError(f"no view recipe {name!r}; choose one of {recipe_names()}")
    entry = table[name]
    crops = tuple(_crop(name, crop) for crop in entry["crops"])
    return ViewRecipe(name, crops, entry.get("source", "")).at_size(size)


def _crop(name: str, fields: dict[str, Any]) -> CropSpec:
    known = set(CropSpec.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise UnknownViewRecipeError(f"views.toml [{name}] has unknown crop field(s) {unknown}; known: {sorted(known)}")
    return CropSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def make_views(recipe: ViewRecipe, images: "torch.Tensor", *, device: "torch.device | str") -> list["torch.Tensor"]:
    """Every crop of ``recipe`` for a batch of images, drawn on ``device`` with torch's RNG there.

    Args:
        recipe: What to draw.
        images: (B, C, H, W) floats in [0, 1] (C = 1 or 3), on any device.
        device: Where the parameters are drawn and the images transformed.

    Returns:
        One (B, C, size, size) batch per crop, in the order of ``recipe.keys``.

    Example:
        >>> view0, view1 = make_views(view_recipe("byol"), images, device="cuda")
    """
    import torch

    device = torch.device(device)
    images = images.to(device, non_blocking=True).float()
    out: list[torch.Tensor] = []
    for crop in recipe.crops:
        pipeline = _pipeline(crop, device.type, device.index)
        # All crops of one kind in one call: the batch repeated ``count`` times, split afterwards.
        stacked = pipeline(images.repeat(crop.count, 1, 1, 1) if crop.count > 1 else images)
        # In place on the crop's new tensor: kornia's colour round trips overshoot 1 by ~2e-7 (torchvision clamps).
        stacked.clamp_(0, 1)
        out += list(stacked.chunk(crop.count)) if crop.count > 1 else [stacked]
    return out


def views_batch(recipe: ViewRecipe, batch: dict[str, "torch.Tensor"], *, device: "torch.device | str") -> dict[str, "torch.Tensor"]:
    """``batch`` with its ``"image"`` entry replaced by the recipe's named crops (what a method's forward reads)."""
    images = batch.pop("image")
    return {**batch, **dict(zip(recipe.keys, make_views(recipe, images, device=device), strict=True))}


@contextlib.contextmanager
def seeded(device: "torch.device", seed: int) -> Iterator[None]:
    """Run the block with torch's RNG (the CPU's and ``device``'s) seeded by ``seed``, then restore it."""
    import torch

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def recipe_for(method: Any) -> ViewRecipe | None:
    """The generic view recipe of a method at its image size, or None for a method that draws its own views.

    A method's ``view_recipe`` attribute names a ``views.toml`` table (or is a ``ViewRecipe`` at 224 px, for
    options that change the crops, as SwAV's ``small_crops``); empty means the method's own ``views`` make
    its samples.

    Raises:
        UnknownViewRecipeError: For a name ``views.toml`` does not define.
    """
    recipe = getattr(method, "view_recipe", None)
    if isinstance(recipe, ViewRecipe):
        return recipe.at_size(method.settings.image_size)
    return view_recipe(recipe, size=method.settings.image_size) if recipe else None


def images_only(image: "torch.Tensor", meta: dict[str, float]) -> dict[str, "torch.Tensor"]:
    """The dataset's sample when the views are drawn on the device: the resized image alone."""
    return {"image": image}


@functools.lru_cache(maxsize=32)
def _pipeline(crop: CropSpec, device_type: str, device_index: int | None):
    """The kornia modules of one crop kind, their random draws on the device (built once per device)."""
    import torch

    from ..extras import extra_imports

    with extra_imports():
        from kornia import augmentation as K

    steps = []
    if crop.rotate:
        steps.append(K.RandomRotation(crop.degrees, p=crop.rotate))
    # align_corners=False: pixel centres as torchvision's resize places them, so both paths see the same crop.
    steps.append(K.RandomResizedCrop((crop.size, crop.size), scale=crop.scale, ratio=crop.ratio, align_corners=False))
    if crop.hflip:
        steps.append(K.RandomHorizontalFlip(p=crop.hflip))
    if crop.vflip:
        steps.append(K.RandomVerticalFlip(p=crop.vflip))
    if crop.jitter_p:
        steps.append(K.ColorJitter(*crop.jitter, p=crop.jitter_p))
    if crop.grey:
        steps.append(K.RandomGrayscale(p=crop.grey))
    if crop.blur:
        steps.append(K.RandomGaussianBlur(crop.kernel, crop.sigma, p=crop.blur))
    if crop.solarize:
        steps.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=crop.solarize))
    device = torch.device(device_type, device_index)
    for step in steps:
        step.set_rng_device_and_dtype(device, torch.float32)
    return torch.nn.Sequential(*steps).to(device)
