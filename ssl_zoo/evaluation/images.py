"""Read one image file into a uint8 array (H, W) or (H, W, 3): PNG/JPEG, DICOM or a NIfTI slice.

Every reader ends in uint8 so that one preprocessing path (``ssl_zoo.transforms`` or ``preprocess``) serves all
formats. Medical formats carry more than 8 bits; they are windowed to 0..255 first (DICOM: the file's window,
else the full range; NIfTI: the slice's range).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..extras import extra_imports

DICOM_SUFFIXES = (".dcm", ".dicom")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def read_image(path: str | Path, *, window: tuple[float, float] | None = None,
               slice_index: int | None = None) -> np.ndarray:
    """The pixels of ``path`` as uint8 (H, W) or (H, W, 3).

    Args:
        path: A PNG/JPEG/other PIL image, a DICOM file (``.dcm``) or a NIfTI volume (``.nii``, ``.nii.gz``).
        window: DICOM only: (center, width) overriding the file's VOI window.
        slice_index: NIfTI only: the axial slice (last axis); default the middle one.

    Raises:
        DatasetError: The file is missing or not an image.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, not an image file: give the image files (e.g. {path}/*.png)")
    if not path.is_file():
        raise DatasetError(f"{path}: image file not found; check the dataset paths")
    name = path.name.lower()
    if name.endswith(DICOM_SUFFIXES):
        return read_dicom(path, window=window)
    if name.endswith(NIFTI_SUFFIXES):
        return read_nifti_slice(path, slice_index=slice_index)
    return _read_pil(path)


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
            return np.asarray(image.convert(mode))
    except UnidentifiedImageError as exc:
        raise DatasetError(f"{path}: not an image PIL can read; convert it to PNG") from exc


def read_dicom(path: Path, *, window: tuple[float, float] | None = None) -> np.ndarray:
    """A DICOM image in uint8 through the shared intensity recipe (``ssl_zoo.intensity.read_dicom``): rescaled
    to modality units, the file's VOI window (else its full range) or ``window`` = (center, width),
    MONOCHROME1 inverted (bright = dense)."""
    from ..intensity import Intensity, read_dicom as read_unit

    recipe = None if window is None else Intensity("window", (window[0] - window[1] / 2, window[0] + window[1] / 2))
    return np.round(read_unit(path, recipe) * 255).astype(np.uint8)


def read_nifti_slice(path: Path, *, slice_index: int | None = None) -> np.ndarray:
    """One axial slice of a NIfTI volume in uint8, scaled over the slice's own range."""
    with extra_imports():
        import nibabel

    volume = np.asanyarray(nibabel.load(str(path)).dataobj)
    if volume.ndim == 2:
        return to_uint8(volume.astype(np.float64), float(volume.min()), float(volume.max()))
    index = volume.shape[2] // 2 if slice_index is None else slice_index
    plane = np.asarray(volume[:, :, index], dtype=np.float64).reshape(volume.shape[0], volume.shape[1])
    return to_uint8(plane, float(plane.min()), float(plane.max()))


def to_uint8(pixels: np.ndarray, low: float, high: float) -> np.ndarray:
    """``pixels`` clipped to [low, high] and mapped linearly onto 0..255."""
    span = max(high - low, 1e-12)
    return np.round((np.clip(pixels, low, high) - low) / span * 255).astype(np.uint8)
