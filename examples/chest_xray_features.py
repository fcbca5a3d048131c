"""Features of a real chest radiograph from a MoCo-CXR DenseNet-121, offline.

The DICOM file ``RG1_UNCR.dcm`` ships with the ``pydicom-data`` package. Its photometric interpretation is
MONOCHROME1 (bright means low attenuation), so it is inverted before the model's own preprocessing:
``ssl_zoo.transforms`` scales the 15-bit pixel values, resizes, crops and normalises with the CheXpert statistics.

Run: ``python examples/chest_xray_features.py [path/to/file.dcm] [--mirror FOLDER | --from-file d1w-00001.pth.tar]``
(the weights are pulled on first use; offline, give a mirror folder or the upstream file you downloaded).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

import ssl_zoo
from _sources import add_source_options, prepare_models, run
from ssl_zoo.errors import MissingExtraError
from ssl_zoo.extras import extra_imports

MODEL = "moco-cxr-d121"


def read_radiograph(path: str) -> np.ndarray:
    """The pixel array with bright meaning dense tissue, whatever the file's photometric interpretation."""
    with extra_imports():
        import pydicom

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dicom", nargs="?", help="a chest radiograph (default: RG1_UNCR.dcm from pydicom-data)")
    add_source_options(parser)
    args = parser.parse_args(argv)
    path = args.dicom or default_radiograph()
    name = prepare_models(args, [MODEL])[0]
    out = features(path, name)
    print(f"{MODEL}: {tuple(out.shape)} features, mean {out.mean():.4f}, std {out.std():.4f}")


def default_radiograph() -> str:
    """``RG1_UNCR.dcm`` (MONOCHROME1) from the pydicom-data package."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        raise MissingExtraError('no DICOM given and pydicom-data is not installed: give a .dcm path, '
                                'or pip install pydicom-data "ssl_zoo[medical]"') from None
    return get_testdata_file("RG1_UNCR.dcm")


if __name__ == "__main__":
    sys.exit(run(main))
