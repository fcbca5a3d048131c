"""Items that load themselves: a CT slice from a MetaImage (``.mha``) volume, and a union of mask files.

Both are path-like (``os.fspath`` gives the first file) so that ``Samples.fingerprint`` and error messages work.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DatasetError
from ...evaluation.images import read_image

MET_TYPES = {"MET_UCHAR": "u1", "MET_CHAR": "i1", "MET_USHORT": "u2", "MET_SHORT": "i2", "MET_UINT": "u4",
             "MET_INT": "i4", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}


def read_metaimage(path: Path) -> np.ndarray:
    """The voxels of a single-file MetaImage (``.mha``, ``ElementDataFile = LOCAL``) as (z, y, x).

    Raises:
        DatasetError: Not a MetaImage with local, raw or zlib-compressed data of a known element type.
    """
    raw = Path(path).read_bytes()
    marker = raw.find(b"ElementDataFile")
    end = raw.find(b"\n", marker) + 1
    lines = raw[:end].decode("latin-1").splitlines() if marker >= 0 and end > 0 else []
    header = {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in lines)}
    data = raw[end:]
    if header.get("ElementDataFile") != "LOCAL" or header.get("ElementType") not in MET_TYPES:
        raise DatasetError(f"{path}: not a single-file MetaImage (.mha with ElementDataFile = LOCAL)")
    if header.get("CompressedData", "False").lower() == "true":
        data = zlib.decompress(data)
    order = ">" if header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False")) == "True" else "<"
    shape = [int(v) for v in header["DimSize"].split()][::-1]
    return np.frombuffer(data, dtype=order + MET_TYPES[header["ElementType"]]).reshape(shape)


@dataclass(frozen=True)
class CtSlice:
    """The middle axial slice of a CT volume, clipped to ``window`` (HU) and mapped onto 0..255 (truncated)."""

    path: Path
    window: tuple[float, float]

    def __fspath__(self) -> str:
        return str(self.path)

    def load(self) -> np.ndarray:
        """The uint8 slice (y, x)."""
        volume = read_metaimage(self.path)
        plane = volume[volume.shape[0] // 2].astype(np.float64)
        low, high = self.window
        # truncated, not rounded: the medical transfer study casts (clipped - low) / (high - low) * 255 with astype
        return ((np.clip(plane, low, high) - low) / (high - low) * 255).astype(np.uint8)


@dataclass(frozen=True)
class MaskUnion:
    """A binary mask that is the union (> 0) of several mask files (Montgomery's left and right lung)."""

    paths: tuple[Path, ...]

    def __fspath__(self) -> str:
        return str(self.paths[0])

    def load(self) -> np.ndarray:
        """The uint8 union mask: 255 where any file is > 0."""
        masks = [read_image(p) > 0 for p in self.paths]
        return (np.logical_or.reduce(masks) * 255).astype(np.uint8)
