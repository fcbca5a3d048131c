"""Segmentation layouts: Montgomery's lung masks, DRIVE's vessels, and a generic image + mask folder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...errors import DatasetLayoutError
from ...evaluation.data import Samples
from ..schema import Card
from .common import Request, images_in, require, samples
from .files import image_folder
from .volumes import MaskUnion

DRIVE_SPLITS = (("training", "train"), ("test", "test"))
LEADING_NUMBER = re.compile(r"^(\d+)_")


def _pairs(images: list[Path], masks: dict[str, object], where: str) -> list[object]:
    """The mask of each image (keyed by the image's stem); every image needs one."""
    unmatched = [p.name for p in images if p.stem not in masks]
    if unmatched or not images:
        raise DatasetLayoutError(f"{where}: {len(unmatched)} image(s) without a mask (e.g. {unmatched[:1]}); "
                                 "each image needs its mask")
    return [masks[p.stem] for p in images]


def _number(path: Path) -> str | None:
    """DRIVE's pair key: the leading number of the file name."""
    match = LEADING_NUMBER.match(path.name)
    return match[1] if match else None


def read_montgomery_lungs(card: Card, request: Request) -> Samples:
    """``CXR_png/<name>.png`` with ``ManualMask/leftMask/<name>.png`` and ``rightMask``: target = their union."""
    folder = image_folder(card, request)
    sides = [require(card, folder.parent / "ManualMask" / side, request.root) for side in ("leftMask", "rightMask")]
    images = images_in(folder)
    found = [{p.stem: p for p in images_in(side)} for side in sides]
    both = {stem: MaskUnion((left, found[1][stem])) for stem, left in found[0].items() if stem in found[1]}
    targets = np.asarray(_pairs(images, both, str(folder)), dtype=object)
    return samples(card, request, images, targets, split=None, groups=[p.stem for p in images])


def read_drive(card: Card, request: Request) -> Samples:
    """DRIVE ``training/`` (21-40) -> train, ``test/`` (01-20) -> test; masks ``1st_manual/NN_manual1.gif`` (or
    the BenchmarkTransferLearning PNG), paired by the leading number."""
    images, targets, split = [], [], []
    for folder, part in DRIVE_SPLITS:
        found = images_in(require(card, request.root / folder / "images", request.root))
        manual = images_in(require(card, request.root / folder / "1st_manual", request.root))
        by_number = {_number(p): p for p in manual}
        keyed = {p.stem: by_number[_number(p)] for p in found if _number(p) in by_number}
        targets += _pairs(found, keyed, str(request.root / folder))
        images += found
        split += [part] * len(found)
    return samples(card, request, images, np.asarray(targets, dtype=object), split=split,
                   groups=[p.stem.split("_")[0] for p in images])


def read_image_mask(card: Card, request: Request) -> Samples:
    """``images/`` and ``masks/`` with the same file names (mask > 0 is foreground); one group per image."""
    images = images_in(require(card, request.root / "images", request.root))
    masks = {p.stem: p for p in images_in(require(card, request.root / "masks", request.root))}
    targets = np.asarray(_pairs(images, masks, str(request.root / "images")), dtype=object)
    return samples(card, request, images, targets, split=None, groups=[p.stem for p in images])
