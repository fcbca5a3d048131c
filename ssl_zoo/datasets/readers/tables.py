"""Layouts of an index CSV next to image folders: EyePACS (Kaggle DR) and STOIC2021 (CT volumes)."""

from __future__ import annotations

from ...errors import DatasetError, DatasetLayoutError
from ...evaluation.data import Samples
from ..schema import Card
from .common import Request, check_files, encode, read_rows, require, require_columns, samples
from .volumes import CtSlice

EYEPACS_TEST_LABELS = ("testLabels.csv", "retinopathy_solution.csv")


def read_eyepacs(card: Card, request: Request) -> Samples:
    """Kaggle train/test as the official split; groups = subject (the number before ``_left``/``_right``)."""
    root = request.root
    test_csv = next((root / f for f in EYEPACS_TEST_LABELS if (root / f).is_file()), root / EYEPACS_TEST_LABELS[0])
    paths, raw, split = [], [], []
    for csv_path, folder, part in ((root / "trainLabels.csv", "train", "train"), (test_csv, "test", "test")):
        rows = read_rows(require(card, csv_path, root))
        require_columns(csv_path, rows, ["image", "level"])
        require(card, root / folder, root)
        paths += [root / folder / f"{r['image']}.jpeg" for r in rows]
        raw += [r["level"] for r in rows]
        split += [part] * len(rows)
    check_files(paths, "trainLabels.csv / testLabels.csv", request.progress)
    subject, _, eye = zip(*(p.stem.rpartition("_") for p in paths))
    bad = sorted({e for e in eye if e not in ("left", "right")})
    if bad:
        raise DatasetLayoutError(f"{root}: image names must end in _left or _right (got ..._{bad[0]})")
    targets = encode(card, request.convention, raw, str(root))
    return samples(card, request, paths, targets, split=split, groups=subject, meta={"eye": eye})


def read_stoic(card: Card, request: Request) -> Samples:
    """STOIC2021: ``metadata/reference.csv`` (``probCOVID``) and ``data/mha/<PatientID>.mha``; one scan per
    patient; the middle axial slice in the card's HU window."""
    root = request.root
    csv_path = require(card, root / "metadata" / "reference.csv", root)
    rows = read_rows(csv_path)
    require_columns(csv_path, rows, ["PatientID", "probCOVID"])
    paths = [root / "data" / "mha" / f"{r['PatientID']}.mha" for r in rows]
    check_files(paths, str(csv_path), request.progress)
    window = card.intensity.window
    if window is None:
        raise DatasetError(f"{card.name}: a CT card needs an intensity window")
    targets = encode(card, request.convention, [r["probCOVID"] for r in rows], str(csv_path))
    return samples(card, request, [CtSlice(p, window) for p in paths], targets, split=None,
                   groups=[r["PatientID"] for r in rows])
