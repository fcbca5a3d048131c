"""The 18 transform families of the invariance analysis with upstream's deterministic parameter sweeps.

From ``SSL_medicalimaging/invariances/invariances.py`` (``ManualTransform``, after Ericsson et al.'s
``ssl-invariances``): each family has ``k`` copies (256; 2 for the on/off families; 7 for posterize) whose
parameters follow a fixed sweep. A copy is made the upstream way: the torchvision function on the full-size
PIL image, then ``Resize(resize)`` (bilinear) + ``CenterCrop(crop)``; ``resized_crop`` makes its ``crop``-sized
output directly. Upstream quirks kept: translation offsets, crop boxes and the blur kernel are in pixels of the
``resize``-d image but applied to the full-size one; 'scale' and 'translation' carry a 1-degree shear; the
identity copy is part of each sweep and of the mean.
"""

from __future__ import annotations

from itertools import product
from typing import Any, Callable

import numpy as np

FAMILIES = ("rotation", "translation", "scale", "shear", "resized_crop", "h_flip", "v_flip", "deform", "grayscale",
            "brightness", "contrast", "saturation", "hue", "blur", "sharpness", "invert", "equalize", "posterize")
SWITCHES = ("h_flip", "v_flip", "grayscale", "invert", "equalize")


def default_k(family: str) -> int:
    """Upstream's ``--k`` default: 2 for on/off families, 7 for posterize, 256 otherwise."""
    return 2 if family in SWITCHES else 7 if family == "posterize" else 256


def linspace(low: float, high: float, n: int) -> list[float]:
    """``torch.linspace(low, high, n)`` in float32, as Python floats (upstream builds every sweep this way)."""
    import torch

    return torch.linspace(low, high, n).to(torch.float32).tolist()


def grid(low: float, high: float, k: int) -> list[float]:
    """``linspace(low, high, sqrt(k) + 1)[:sqrt(k)]``: one axis of upstream's square sweeps."""
    side = int(np.sqrt(k))
    return linspace(low, high, side + 1)[:side]


def sweep(family: str, k: int, resize: int = 256, crop: int = 224) -> list[dict[str, Any]]:
    """The parameters of every copy of ``family``, in upstream's order.

    Example:
        >>> sweep("rotation", 4)
        [{'angle': 0.0}, {'angle': 90.0}, {'angle': 180.0}, {'angle': 270.0}]
    """
    if family in SWITCHES:
        return [{"on": False}, {"on": True}]
    if family == "rotation":
        return [{"angle": a} for a in linspace(0, 360, k + 1)[:k]]
    if family == "translation":
        space = (1 - crop / resize) / 2
        axis = grid(-space, space, k)
        return [{"translate": [a * resize, b * resize], "angle": 0.0, "scale": 1.0, "shear": 1.0}
                for a, b in product(axis, axis)]
    if family == "scale":
        return [{"scale": s, "translate": [0.0, 0.0], "angle": 0.0, "shear": 1.0} for s in linspace(0.25, 2, k)]
    if family == "shear":
        axis = grid(-160, 160, k)
        return [{"shear": [a, b], "translate": [0.0, 0.0], "angle": 0.0, "scale": 1.0} for a, b in product(axis, axis)]
    if family == "resized_crop":
        n = int(np.sqrt(np.sqrt(k)))
        starts = [v * resize for v in linspace(0, 0.25, n)]
        sizes = [v * resize for v in linspace(0.75, 0.25, n)]
        return [{"top": t, "left": left, "height": h, "width": w, "size": [crop, crop]}
                for t, left, h, w in product(starts, starts, sizes, sizes)]
    if family == "deform":
        sigmas = [int(v) for v in linspace(10, 50, 8)] * 32
        return [{"sigma": s, "seed": i} for i, s in enumerate(sigmas)][:k]
    return photometric_sweep(family, k, crop)


def photometric_sweep(family: str, k: int, crop: int) -> list[dict[str, Any]]:
    """Sweeps of the colour, blur and bit-depth families."""
    factors = {"brightness": ("brightness_factor", 0.25, 5), "contrast": ("contrast_factor", 0.25, 5),
               "saturation": ("saturation_factor", 0.25, 5), "hue": ("hue_factor", -0.5, 0.5),
               "sharpness": ("sharpness_factor", 1, 30.0)}
    if family in factors:
        key, low, high = factors[family]
        return [{key: v} for v in linspace(low, high, k)]
    if family == "blur":
        return [{"sigma": s, "kernel_size": 1 + crop // 20 * 2} for s in linspace(1e-5, 20.0, k)]
    if family == "posterize":
        return [{"bits": b} for b in range(1, 8)]
    raise KeyError(family)


def elastic(image: Any, sigma: int, seed: int, alpha: float = 1.0) -> Any:
    """An elastic deformation: uniform(-1, 1) displacements smoothed by a Gaussian of ``sigma`` (17 x 17 kernel,
    as albumentations' approximate mode), times ``alpha`` pixels; seeded per copy."""
    import torch
    from scipy.ndimage import gaussian_filter
    from torchvision.transforms import functional as FT

    width, height = image.size
    rng = np.random.RandomState(seed)
    fields = [gaussian_filter(rng.rand(height, width) * 2 - 1, sigma, truncate=8 / sigma) * alpha for _ in "xy"]
    scale = np.array([2.0 / width, 2.0 / height])  # pixels -> torchvision's normalised displacement
    displacement = torch.from_numpy(np.stack(fields, -1) * scale).float()[None]
    return FT.elastic_transform(image, displacement)


def apply(family: str, image: Any, params: dict[str, Any], resize: int, crop: int,
          interpolation: str = "bilinear") -> Any:
    """One copy of ``family`` with ``params`` of a PIL image, resized and cropped as upstream (a PIL image).

    ``interpolation`` is the clean images' resize (upstream: torchvision's default, bilinear), so an identity
    copy is the clean image at any setting.
    """
    from torchvision.transforms import functional as FT

    from .analysis_input import resize_crop

    functions: dict[str, Callable[..., Any]] = {
        "rotation": FT.rotate, "translation": FT.affine, "scale": FT.affine, "shear": FT.affine,
        "resized_crop": FT.resized_crop, "h_flip": FT.hflip, "v_flip": FT.vflip, "deform": elastic,
        "grayscale": lambda im: FT.rgb_to_grayscale(im, num_output_channels=3), "brightness": FT.adjust_brightness,
        "contrast": FT.adjust_contrast, "saturation": FT.adjust_saturation, "hue": FT.adjust_hue,
        "blur": FT.gaussian_blur, "sharpness": FT.adjust_sharpness, "invert": FT.invert, "equalize": FT.equalize,
        "posterize": FT.posterize}
    if family in SWITCHES:
        image = functions[family](image) if params["on"] else image
    else:
        image = functions[family](image, **params)
    if family == "resized_crop":
        return image
    return resize_crop(image, resize, crop, interpolation)
