"""Layouts whose label is in the file system: class folders, a file-name prefix, a file-name suffix."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from ...errors import DatasetError, DatasetSplitError
from ...evaluation.data import Samples
from ..schema import Card
from .common import Request, check_files, encode, images_in, require, samples

PREFIX = re.compile(r"^([A-Za-z]+)")


def image_folder(card: Card, request: Request, strip: int = 1) -> Path:
    """The folder ``strip`` levels above the card's first layout line (a file) under the root, which may be the
    folder above the release or the release folder itself."""
    parts = Path(card.layout[0]).parts[:-strip]
    candidates = [request.root.joinpath(*parts), request.root.joinpath(*parts[1:])]
    found = [c for c in candidates if c.is_dir()]
    return found[0] if found else require(card, candidates[0], request.root)


def read_class_folders(card: Card, request: Request) -> Samples:
    """One folder per class (names through ``label_map``; ordinal classes keep the card's order); one image per
    group (no patient key published)."""
    folder = image_folder(card, request, strip=2)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and images_in(p))
    paths = [p for c in classes for p in images_in(c)]
    raw = [p.parent.name for p in paths]
    targets = encode(card, request.convention, raw, str(folder))
    return samples(card, request, paths, targets, split=None, groups=[p.stem for p in paths])


def read_file_prefix(card: Card, request: Request) -> Samples:
    """The label is the letters before the number of the file name (PALM: ``P0001``, ``H0001``, ``N0001``)."""
    folder = image_folder(card, request)
    paths = images_in(folder)
    raw = [(PREFIX.match(p.name) or [None, p.name])[1] for p in paths]
    targets = encode(card, request.convention, raw, str(folder))
    return samples(card, request, paths, targets, split=None, groups=[p.stem for p in paths])


def read_file_suffix(card: Card, request: Request) -> Samples:
    """The label is the digit after the last ``_`` (``CHNCXR_0001_0.png``); BenchmarkTransferLearning's lists
    (``ShenzenCXR_{train,valid,test}_data.txt``) next to the images fix the split when present."""
    folder = image_folder(card, request)
    if request.convention.label_file:
        paths, raw = _metadata_labels(card, request, folder)
    else:
        paths = images_in(folder)
        raw = [p.stem.rsplit("_", 1)[-1] for p in paths]
    targets = encode(card, request.convention, raw, str(folder))
    split = _listed_split(request.root, card, [p.name for p in paths])
    return samples(card, request, paths, targets, split=split, groups=[p.stem.rsplit("_", 1)[0] for p in paths])


def _metadata_labels(card: Card, request: Request, folder: Path) -> tuple[list[Path], list[str]]:
    """Images and raw labels ("0" / "1") from the convention's metadata CSV: findings "normal" -> "0", else "1"."""
    path = require(card, request.root / request.convention.label_file, request.root)
    with path.open(newline="") as handle:
        rows = [row for row in list(csv.reader(handle))[1:] if row]
    if not rows or min(len(row) for row in rows) < 4:
        raise DatasetError(f"{path}: needs a header and rows of file name, sex, age, findings")
    paths = [folder / row[0].strip() for row in rows]
    check_files(paths, str(path), request.progress)
    return paths, ["0" if row[3] == "normal" else "1" for row in rows]


def _listed_split(root: Path, card: Card, names: list[str]) -> list[str] | None:
    """Split per file name from the card's ``lists`` (train, val, test; lines ``name,label``) when all are
    present under the root, else None."""
    files = dict(zip(("train", "val", "test"), (root / name for name in card.lists)))
    if not files or not all(f.is_file() for f in files.values()):
        return None
    split = {line.split(",")[0].strip(): part for part, f in files.items()
             for line in f.read_text().splitlines() if line.strip()}
    unlisted = [n for n in names if n not in split]
    if unlisted:
        raise DatasetSplitError(f"{root}: {len(unlisted)} image(s) in none of {list(card.lists)} (e.g. {unlisted[0]}); "
                           "use the lists of the same release or remove them for a seeded grouped split")
    return [split[n] for n in names]
