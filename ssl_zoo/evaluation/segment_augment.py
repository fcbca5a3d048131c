"""The paired training augmentation of the segmentation protocol: BenchmarkTransferLearning V1's
``dataloader.build_transform_segmentation`` (albumentations 0.4.3, pinned by its requirements) in torch and numpy.

Upstream, in order, on each training image and its mask:

1. ``OneOf([RandomBrightnessContrast(), RandomGamma()], p=0.3)``: brightness/contrast ``x * (1 + U(-0.2, 0.2)) +
   U(-0.2, 0.2)`` or gamma ``U(0.8, 1.2)``, each chosen with 1/2; the image only.
2. ``OneOf([ElasticTransform(alpha=120, sigma=6, alpha_affine=3.6), GridDistortion(), OpticalDistortion(
   distort_limit=2, shift_limit=0.5)], p=0.3)``: each member keeps its default ``p=0.5``, so each is chosen with 1/3
   (0.1 overall). Image bilinear, mask nearest, borders ``BORDER_REFLECT_101``:

   - elastic: a random affine moving the three points ``c + s``, ``(c0 + s, c1 - s)``, ``c - s`` (``c`` the centre,
     ``s`` a third of the side) by ``U(-3.6, 3.6)`` each, then the displacement ``gaussian_filter(U(-1, 1), 6) * 120``
     per axis: a pixel ``p`` reads the source at ``A^-1 (p + d(p))``;
   - grid: 5 cells a side (``side // 5`` pixels, the remainder a last cell), each cell stretched by ``1 + U(-0.3,
     0.3)``: source positions run linearly from the previous cell's end to ``end + step * stretch`` (the last cell
     back to the side), per axis, as 0.4.3's ``grid_distortion`` lays them (later releases changed the cells);
   - optical: OpenCV's ``initUndistortRectifyMap`` with focal length = the width, principal point ``side / 2 +
     round(U(-0.5, 0.5))`` (always the centre) and ``k1 = k2 = U(-2, 2)``: a destination pixel ``(u, v)`` at ``x = (u
     - (W - 1) / 2) / f``, ``y = (v - (H - 1) / 2) / f`` reads the source at ``f x g + cx``, ``f y g + cy`` with ``g =
     1 + k r^2 + k r^4``.
3. ``RandomSizedCrop(min_max_height=(156, 224), height=224, width=224, p=0.25)``: a square of 156/224 .. 1 of the
   side, resized back (bilinear image, nearest mask).

Differences from albumentations (the preset's notes repeat them): the elastic affine and displacement are sampled in
one pass (upstream warps, then remaps: two interpolations); random numbers come from numpy's seeded ``Generator``, not
Python's ``random``; the augmentation acts on the [0, 1] (or normalised) float image, not on uint8 pixels, so nothing is
rounded or clipped to 0..255. Geometry commutes with the per-channel normalisation, so only the colour step differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

COLOUR_P, DISTORTION_P, CROP_P = 0.3, 0.3, 0.25
COLOURS = ("brightness_contrast", "gamma")
DISTORTIONS = ("elastic", "grid", "optical")
ELASTIC_ALPHA, ELASTIC_SIGMA, ELASTIC_AFFINE = 120.0, 120 * 0.05, 120 * 0.03
GRID_STEPS, GRID_LIMIT = 5, 0.3
OPTICAL_LIMIT, OPTICAL_SHIFT = 2.0, 0.5


@dataclass
class Plan:
    """What one call of the augmentation does, drawn before anything is applied.

    Attributes:
        colour: None or a name of ``COLOURS``; ``colour_args`` its factors.
        distortion: None or a name of ``DISTORTIONS``; ``field`` its (H, W, 2) source coordinates (x, y) in pixels.
        crop: None or (top, left, side) of the square cut out and resized back.
    """

    colour: str | None = None
    colour_args: tuple[float, ...] = ()
    distortion: str | None = None
    field: np.ndarray | None = field(default=None, repr=False)
    crop: tuple[int, int, int] | None = None


def draw_plan(size: int, rng: np.random.Generator) -> Plan:
    """The random choices of one augmentation of a ``size`` x ``size`` pair, in upstream's order."""
    plan = Plan()
    if rng.random() < COLOUR_P:
        plan.colour = COLOURS[int(rng.integers(len(COLOURS)))]
        plan.colour_args = ((1 + rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)) if plan.colour == COLOURS[0]
                            else (rng.uniform(0.8, 1.2),))
    if rng.random() < DISTORTION_P:
        plan.distortion = DISTORTIONS[int(rng.integers(len(DISTORTIONS)))]
        plan.field = FIELDS[plan.distortion](size, size, rng)
    if rng.random() < CROP_P:
        side = int(rng.integers(int(size * 156 / 224), size + 1))
        plan.crop = (int(rng.integers(0, size - side + 1)), int(rng.integers(0, size - side + 1)), side)
    return plan


def augment_pair(image: Any, mask: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """One seeded augmentation of a float (C, H, W) image and its (1, H, W) mask (module docstring).

    Args:
        image: The image, [0, 1] or normalised.
        mask: 0/1 or class ids (float); ids stay ids (nearest sampling).
        rng: The generator every random choice comes from.

    Returns:
        The augmented (image, mask), same shapes.

    Example:
        >>> image, mask = augment_pair(image, mask, np.random.default_rng(0))
    """
    return apply_plan(image, mask, draw_plan(image.shape[-1], rng))


def apply_plan(image: Any, mask: Any, plan: Plan) -> tuple[Any, Any]:
    """``image`` and ``mask`` changed as ``plan`` says: colour (image only), distortion, crop."""
    import torch.nn.functional as F

    if plan.colour == "brightness_contrast":
        image = image * plan.colour_args[0] + plan.colour_args[1]
    elif plan.colour == "gamma":  # on the image's own range, which need not be [0, 1]
        low, high = image.min(), image.max()
        span = (high - low).clamp(min=1e-6)
        image = ((image - low) / span) ** plan.colour_args[0] * span + low
    if plan.field is not None:
        image, mask = remap(image, plan.field, "bilinear"), remap(mask, plan.field, "nearest")
    if plan.crop is not None:
        top, left, side = plan.crop
        size = image.shape[-2:]
        cut = (slice(None), slice(top, top + side), slice(left, left + side))
        image = F.interpolate(image[cut][None], size=size, mode="bilinear", align_corners=False)[0]
        mask = F.interpolate(mask[cut][None], size=size, mode="nearest")[0]
    return image, mask


def remap(x: Any, coords: np.ndarray, mode: str) -> Any:
    """``cv2.remap`` of a (C, H, W) tensor: ``out[:, v, u] = x[:, coords[v, u, 1], coords[v, u, 0]]``, sampled with
    ``mode`` and ``BORDER_REFLECT_101`` (``grid_sample``'s reflection about the corner pixel centres)."""
    import torch
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    scale = np.array([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)])
    grid = torch.as_tensor(coords * scale - 1.0, dtype=x.dtype)[None]
    return F.grid_sample(x[None], grid, mode=mode, padding_mode="reflection", align_corners=True)[0]


def pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) pixel coordinates of an h x w image, each (h, w)."""
    return np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))


def elastic_field(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Source coordinates of albumentations 0.4.3's ``ElasticTransform(120, 6, 3.6)``: affine, then displacement."""
    from scipy.ndimage import gaussian_filter

    centre, third = np.array([h // 2, w // 2], dtype=np.float64), min(h, w) // 3
    moved_from = np.array([centre + third, [centre[0] + third, centre[1] - third], centre - third])
    moved_to = moved_from + rng.uniform(-ELASTIC_AFFINE, ELASTIC_AFFINE, size=(3, 2))
    dx, dy = (gaussian_filter(rng.random((h, w)) * 2 - 1, ELASTIC_SIGMA) * ELASTIC_ALPHA for _ in range(2))
    x, y = pixel_grid(h, w)
    # warpAffine reads the source at A^-1 p: the affine taking the moved points back to the original ones
    inverse = np.linalg.solve(np.c_[moved_to, np.ones(3)], moved_from).T
    points = np.stack([x + dx, y + dy, np.ones_like(x)], -1)
    return points @ inverse.T


def grid_axis(length: int, stretches: np.ndarray) -> np.ndarray:
    """Source positions along one axis of 0.4.3's ``grid_distortion``: cells of ``length // 5`` pixels, each cell
    a linear ramp (both ends included) from the previous cell's end to ``end + step * stretch``; a cell past the
    side ends at the side."""
    step, positions, previous = length // GRID_STEPS, np.zeros(length), 0.0
    for index, start in enumerate(range(0, length, step)):
        end = start + step
        current = previous + step * stretches[index] if end <= length else float(length)
        end = min(end, length)
        positions[start:end] = np.linspace(previous, current, end - start)
        previous = current
    return positions


def grid_field(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Source coordinates of ``GridDistortion(num_steps=5, distort_limit=0.3)``: 6 stretches per axis, x first.

    The side must be at least 20 pixels (below that upstream's cells can outnumber its stretches)."""
    stretch_x, stretch_y = (1 + rng.uniform(-GRID_LIMIT, GRID_LIMIT, GRID_STEPS + 1) for _ in range(2))
    x, y = np.meshgrid(grid_axis(w, stretch_x), grid_axis(h, stretch_y))
    return np.stack([x, y], -1)


def optical_field(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Source coordinates of ``OpticalDistortion(distort_limit=2, shift_limit=0.5)`` (module docstring)."""
    k = rng.uniform(-OPTICAL_LIMIT, OPTICAL_LIMIT)
    dx, dy = (round(rng.uniform(-OPTICAL_SHIFT, OPTICAL_SHIFT)) for _ in range(2))
    focal = float(w)  # 0.4.3 uses the width for both axes
    u, v = pixel_grid(h, w)
    x, y = (u - (w - 1) / 2) / focal, (v - (h - 1) / 2) / focal
    r2 = x * x + y * y
    gain = 1 + k * r2 + k * r2 * r2
    return np.stack([focal * x * gain + w / 2 + dx, focal * y * gain + h / 2 + dy], -1)


FIELDS = {"elastic": elastic_field, "grid": grid_field, "optical": optical_field}
