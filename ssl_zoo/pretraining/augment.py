"""The methods' own augmentations, on (C, H, W) float tensors in [0, 1], drawn from torch's RNG.

Only torch's RNG is used (no ``random``/NumPy), so seeding it per sample makes every view reproducible.
"""

from __future__ import annotations

from torchvision.transforms import v2


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
    return v2.Compose([crop(size, (0.2, 1.0)), colour(size=size), v2.RandomHorizontalFlip()])


def simclr(size: int, scale: tuple[float, float] = (0.08, 1.0)) -> v2.Transform:
    """SimCLR: crop 0.08-1, flip, jitter 0.8/0.2 p 0.8, grey 0.2, blur 0.5."""
    return v2.Compose([crop(size, scale), v2.RandomHorizontalFlip(), colour(0.8, 0.2, size=size)])
