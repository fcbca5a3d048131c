"""The medical methods' own augmentations (MAGICAL, DiRA, Chaitanya), on (C, H, W) tensors in [0, 1].

Only torch's RNG is used, so seeding it per sample makes every view reproducible. The generic view pipelines
(MoCo-v2, SimCLR, BYOL, SwAV, Barlow Twins, and Wolf et al.'s variants) live in ``augment.py`` / ``views.py``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# MAGICAL's (and TOWER's) three fixed Bézier control sets (func.py ``nonlinear_transformation``).
BEZIER_CONTROL_SETS = (((0.0, 0.0), (0.0, 0.0), (1.0, 1.0), (1.0, 1.0)),
                       ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0)),
                       ((0.0, 0.0), (0.25, 0.75), (0.75, 0.25), (1.0, 1.0)))


def _randint(low: int, high: int) -> int:
    """A uniform integer in [low, high) (``low`` when the range is empty)."""
    return int(torch.randint(low, max(high, low + 1), ()))


def bezier_curve(points: tuple, samples: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """x(s), y(s) of the cubic Bézier curve through ``points`` for s from 0 (first point) to 1 (last)."""
    s = torch.linspace(0, 1, samples, dtype=torch.float64)
    basis = torch.stack([(1 - s) ** 3, 3 * s * (1 - s) ** 2, 3 * s ** 2 * (1 - s), s ** 3])
    p = torch.tensor(points, dtype=torch.float64)
    return (basis * p[:, :1]).sum(0), (basis * p[:, 1:]).sum(0)


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``np.interp`` in torch: piecewise-linear through (xp, fp), xp increasing, flat outside."""
    xp, fp = xp.to(x.dtype), fp.to(x.dtype)
    idx = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1, y0, y1 = xp[idx - 1], xp[idx], fp[idx - 1], fp[idx]
    w = ((x - x0) / (x1 - x0).clamp(min=1e-12)).clamp(0, 1)
    return y0 + w * (y1 - y0)


def magical_bezier(image: torch.Tensor, invert_p: float = 0.5) -> torch.Tensor:
    """MAGICAL's non-linear intensity transform: one of the three fixed control sets, inverted with ``invert_p``.

    As in the reference (Models Genesis' ``bezier_curve`` runs from the last control point to the first), the
    plain mapping sorts both coordinates; the inverted one sorts x only, pairing it with y in that reversed
    order. Runs on [0, 1] images (the reference's normalised inputs were clamped: fixed here).
    """
    points = BEZIER_CONTROL_SETS[_randint(0, len(BEZIER_CONTROL_SETS))]
    xs, ys = bezier_curve(points)
    if torch.rand(()) < invert_p:
        return interp(image.clamp(0, 1), torch.sort(xs).values, ys.flip(0))
    return interp(image.clamp(0, 1), torch.sort(xs).values, torch.sort(ys).values)


def twist(image: torch.Tensor, grid: tuple[int, int] = (10, 20), std: tuple[float, float] = (10.0, 20.0),
          reference_size: int = 224) -> torch.Tensor:
    """A smooth random deformation: displacements N(0, σ²) on a g x g control grid, cubic-interpolated.

    g ~ U{10..19}, σ ~ U[10, 20) pixels of a ``reference_size`` image (scaled to this one), as MAGICAL's
    SimpleITK B-spline twist draws its mesh and std.
    """
    _, h, w = image.shape
    g = _randint(*grid)
    sigma = (std[0] + float(torch.rand(())) * (std[1] - std[0])) * h / reference_size
    coarse = torch.randn(1, 2, g, g) * sigma
    dense = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0]  # pixels (dx, dy)
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    field = torch.stack([xs + dense[0] * 2 / max(1, w - 1), ys + dense[1] * 2 / max(1, h - 1)], dim=-1)
    return F.grid_sample(image.unsqueeze(0), field.unsqueeze(0), mode="bilinear", padding_mode="border",
                         align_corners=True)[0]


def stripe_mask(image: torch.Tensor, ratio: float = 0.6) -> torch.Tensor:
    """MAGICAL's ``StripeMaskingGenerator``: ``ratio`` of the rows, chosen at random, set to 0."""
    h = image.shape[1]
    hidden = torch.randperm(h)[:round(ratio * h)]
    out = image.clone()
    out[:, hidden] = 0
    return out


def block_mask(image: torch.Tensor, ratio: float, grid: int = 32) -> torch.Tensor:
    """MAGICAL's ``BlockMaskingGenerator`` fixed: ``ratio`` of a ``grid`` x ``grid`` block grid set to 0.

    The reference resizes its mask bilinearly and inverts it, hiding most of the image whatever the ratio;
    here ``ratio`` is the hidden fraction, as its name promises.
    """
    _, h, w = image.shape
    hidden = torch.rand(grid * grid).argsort() < round(ratio * grid * grid)
    mask = F.interpolate(hidden.view(1, 1, grid, grid).float(), size=(h, w), mode="nearest")[0]
    return image * (1 - mask)


def magical_proxy(image: torch.Tensor, mask_ratio: float, twist_p: float = 0.1,
                  stripe_ratio: float = 0.6) -> torch.Tensor:
    """MAGICAL's NL+M proxy (``generate_pair_new``): Bézier curve, twist at ``twist_p``, stripe then block masks."""
    out = magical_bezier(image)
    if torch.rand(()) < twist_p:
        out = twist(out)
    return block_mask(stripe_mask(out, stripe_ratio), mask_ratio)


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


def intensity(image: torch.Tensor, max_delta: float = 0.3, contrast: tuple[float, float] = (0.7, 1.3)) -> torch.Tensor:
    """Chaitanya et al.'s intensity-only augmentation: random brightness, then contrast about the brightened
    image's mean (``tf.image.random_contrast`` on the output of ``random_brightness``), clipped to [0, 1.5]."""
    delta = (torch.rand(()) * 2 - 1) * max_delta
    factor = contrast[0] + torch.rand(()) * (contrast[1] - contrast[0])
    brightened = image + delta
    mean = brightened.mean()
    return ((brightened - mean) * factor + mean).clamp(0, 1.5)


def fixed_crop(image: torch.Tensor, size: int, bbox_fraction: float = 100 / 192,
               start: tuple[float, float] = (10 / 192, 70 / 192)) -> torch.Tensor:
    """Chaitanya et al.'s crop: a random box of ``bbox_fraction`` of the side, resized back to ``size``.

    Its corner is uniform in [``start[0]``, ``start[1]``) of the side on each axis (the reference's
    ``crop_batch``: ``randint(10, 70)`` at 192 px), never nearer the border, clamped to fit the box.
    """
    _, h, w = image.shape
    side = max(1, int(math.floor(h * bbox_fraction)))
    y, x = (min(_randint(round(n * start[0]), round(n * start[1])), n - side) for n in (h, w))
    box = image[:, y:y + side, x:x + side].unsqueeze(0)
    return F.interpolate(box, size=(size, size), mode="bilinear", align_corners=False)[0]
