"""Features of a real chest radiograph from a MoCo-CXR DenseNet-121, offline.

The DICOM file ``RG1_UNCR.dcm`` ships with the ``pydicom-data`` package. Its photometric interpretation is
MONOCHROME1 (bright means low attenuation), so it is inverted before the model's own preprocessing:
``ssl_zoo.transforms`` scales the 15-bit pixel values, resizes, crops and normalises with the CheXpert statistics.

Run: ``python examples/chest_xray_features.py [path/to/file.dcm]``
"""

from __future__ import annotations

import sys

import numpy as np
import pydicom
import torch

import ssl_zoo

MODEL = "moco-cxr-d121"


def read_radiograph(path: str) -> np.ndarray:
    """The pixel array with bright meaning dense tissue, whatever the file's photometric interpretation."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.astype(np.float32)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = pixels.max() - pixels
    return pixels


def features(path: str, name: str = MODEL) -> torch.Tensor:
    """Pooled features ``(1, num_features)`` of the radiograph at ``path``."""
    image = ssl_zoo.transforms(name)(read_radiograph(path))
    model = ssl_zoo.load(name)
    with torch.no_grad():
        return model(image[None])


def main(argv: list[str]) -> None:
    if argv:
        path = argv[0]
    else:
        from pydicom.data import get_testdata_file

        path = get_testdata_file("RG1_UNCR.dcm")
    out = features(path)
    print(f"{MODEL}: {tuple(out.shape)} features, mean {out.mean():.4f}, std {out.std():.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
