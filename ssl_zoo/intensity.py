"""One intensity recipe: how stored pixel values become [0, 1] intensities, for evaluation readers and
pre-training alike (numpy and pydicom only; no torch).

A model entry (``Preprocessing.intensity``) or a dataset card names its recipe once; every reader of that data
then maps pixels the same way. The LIDC models (Wolf et al.) were trained on CT slices whose whole HU range was
min-max scaled per slice (``"minmax"``), not on a VOI window; Models Genesis clips HU to [-1000, 1000]
(``"window:-1000,1000"``).

Recipes (the text form in TOML, on the command line and in records):

- ``"auto"``: what the format says: a DICOM file's own VOI window (else its full range); uint8 / 255; floats
  already in [0, 1] kept; any other values min-max scaled over the image;
- ``"minmax"``: min-max over each image's (each slice's) own values, after DICOM's modality rescale (HU for CT);
- ``"window:LOW,HIGH"``: clipped to [LOW, HIGH] in modality units and mapped linearly;
- ``"file-window"``: the DICOM file's VOI window (an error for a file without one).

DICOM MONOCHROME1 images (bright = low values) are inverted after scaling, so every image reads like MONOCHROME2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import IntensityError
from .registry.intensity import SCALINGS, Intensity, parse_intensity

__all__ = ["SCALINGS", "Intensity", "file_window", "intensity_of", "parse_intensity", "read_dicom", "scale_to_unit"]

if TYPE_CHECKING:
    import numpy as np


def intensity_of(spec: "str | Intensity | None") -> Intensity:
    """A recipe (text or record), or the recipe of the registry entry or dataset card that ``spec`` names.

    Raises:
        IntensityError: When ``spec`` is neither a recipe nor an entry or card name.

    Example:
        >>> str(intensity_of("lidc-moco-v2"))
        'minmax'
    """
    if spec is None or isinstance(spec, Intensity) or spec in SCALINGS or str(spec).startswith("window:"):
        return parse_intensity(spec)
    from .registry import all_entries

    entries = all_entries()
    if spec in entries:
        return entries[spec].preprocessing.intensity_recipe
    cards = _dataset_cards()
    if spec in cards:
        return parse_intensity(cards[spec].intensity.recipe)
    raise IntensityError(f"{spec!r} is not an intensity recipe ({', '.join(SCALINGS[:2])}, 'window:LOW,HIGH', "
                         "file-window) nor a registry entry or dataset card: see `ssl-zoo list`")


def _dataset_cards() -> dict[str, Any]:
    """The dataset cards by name (``ssl_zoo.datasets``), or none in a checkout without them."""
    try:
        from .datasets import all_cards
    except ImportError:
        return {}
    return all_cards()


def scale_to_unit(pixels: np.ndarray, intensity: Intensity, *,
                  file_window: tuple[float, float] | None = None) -> np.ndarray:
    """``pixels`` of one image as float32 in [0, 1].

    Args:
        pixels: One image (H, W) or (H, W, C); scale a volume slice by slice.
        intensity: The recipe.
        file_window: A DICOM file's VOI window as (low, high), used by "auto" and "file-window".

    Raises:
        IntensityError: "file-window" without a file window.
    """
    import numpy as np

    values = pixels.astype(np.float64, copy=False)
    window = intensity.window
    if intensity.scaling == "file-window":
        if file_window is None:
            raise IntensityError("the file has no VOI window (WindowCenter/WindowWidth): use 'minmax' or "
                                 "'window:LOW,HIGH' as its intensity recipe")
        window = file_window
    elif intensity.scaling == "auto":
        window = file_window
        if window is None and pixels.dtype == np.uint8:
            return (values / 255.0).astype(np.float32)
        if window is None and np.issubdtype(pixels.dtype, np.floating) and values.min() >= 0 and values.max() <= 1:
            return values.astype(np.float32)
    low, high = window if window is not None else (float(values.min()), float(values.max()))
    if high <= low:
        return np.zeros(values.shape, np.float32)
    return ((np.clip(values, low, high) - low) / (high - low)).astype(np.float32)


def read_dicom(path: str | Path, intensity: "Intensity | str | None" = None) -> np.ndarray:
    """A DICOM file's pixels in [0, 1] (float32): modality-rescaled, scaled by ``intensity``, MONOCHROME1 inverted.

    Returns:
        (H, W) for one grey frame, (H, W, 3) for colour, (F, H, W) for a multi-frame grey file (each frame
        scaled on its own by "minmax").

    Raises:
        IntensityError: When the recipe cannot apply to the file.
    """
    import numpy as np

    from .extras import extra_imports

    with extra_imports():
        import pydicom
        from pydicom.pixels import apply_modality_lut

    recipe = parse_intensity(intensity)
    ds = pydicom.dcmread(str(path))
    pixels = ds.pixel_array
    colour = int(ds.get("SamplesPerPixel", 1) or 1) > 1
    if not colour:
        pixels = np.asarray(apply_modality_lut(pixels, ds))
    window = file_window(ds)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and not colour:
        out = np.stack([scale_to_unit(frame, recipe, file_window=window) for frame in pixels])
    else:
        out = scale_to_unit(pixels, recipe, file_window=window)
    # MONOCHROME1 stores dense tissue as low values; invert so that every image reads like MONOCHROME2.
    return 1.0 - out if ds.get("PhotometricInterpretation") == "MONOCHROME1" else out


def file_window(ds: Any) -> tuple[float, float] | None:
    """A DICOM dataset's first VOI window as (low, high) in modality units, or None without one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is None or width is None:
        return None
    center, width = _first(center), max(_first(width), 1.0)
    return center - width / 2, center + width / 2


def _first(value: Any) -> float:
    """A DICOM number that may be multi-valued (several windows): its first value."""
    from pydicom.multival import MultiValue  # pydicom is imported: this runs on a dataset it read

    return float(value[0] if isinstance(value, MultiValue) else value)
