"""Readers of the plain files and folders a user has, each into ``Samples``: a folder per class, a CSV of image
paths and labels, a MedMNIST-style ``.npz``, and an image folder with a mask folder (segmentation).

Dataset cards have their own readers (``ssl_zoo.datasets.readers``); ``read_dataset`` chooses between them.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetError
from .data import IMAGE_SUFFIXES, UNCERTAIN_POLICIES, Samples, multilabel_targets

CSV_SPECIAL = ("split", "group")  # generic CSV columns that are not labels


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES)


def read_image_folder(root: str | Path) -> Samples:
    """One sub-folder per class (sorted names; two classes make a binary task).

    Raises:
        DatasetError: Fewer than two class folders with images.
    """
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir() and any(map(_is_image, p.iterdir())))
    if len(folders) < 2:
        raise DatasetError(f"{root}: needs one sub-folder of images per class (at least two), e.g. "
                           f"{root}/normal/*.png and {root}/pneumonia/*.png")
    paths, labels = [], []
    for class_id, folder in enumerate(folders):
        files = sorted(p for p in folder.iterdir() if _is_image(p))
        paths += files
        labels += [class_id] * len(files)
    task = "binary" if len(folders) == 2 else "multiclass"
    return Samples(paths, np.asarray(labels, dtype=np.int64), task, tuple(p.name for p in folders))


def read_csv_labels(path: str | Path, *, image_column: str | None = None, label_columns: Sequence[str] | None = None,
                    uncertain: str | None = "zeros", seed: int = 0) -> Samples:
    """A CSV with an image path column and label columns, and optionally ``split`` and ``group`` columns.

    One label column of 0/1 is a binary task, one column of other values a multiclass task (classes sorted),
    several columns a multilabel task. Paths are relative to the CSV's folder. A ``split`` column
    (train / val / test) is used as is; a ``group`` column (patient, study) keeps each group in one split.

    Args:
        path: The CSV file (header row required).
        image_column: Default: the first column.
        label_columns: Default: every other column except ``split`` and ``group``.
        uncertain: Policy for ``-1`` cells (multilabel): a key of ``UNCERTAIN_POLICIES`` (None: "zeros").
        seed: Seed of the ``lsr-*`` draws.

    Raises:
        DatasetError: Unknown columns or policy, or an empty file.
    """
    path = Path(path)
    uncertain = uncertain or "zeros"
    if uncertain not in UNCERTAIN_POLICIES:
        raise DatasetError(f"unknown uncertain-label policy {uncertain!r}; use one of {sorted(UNCERTAIN_POLICIES)}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DatasetError(f"{path}: no rows; the CSV needs a header and one row per image")
    header = list(rows[0])
    image_column = image_column or header[0]
    label_columns = list(label_columns or [c for c in header if c not in (image_column, *CSV_SPECIAL)])
    missing = [c for c in [image_column, *label_columns] if c not in header]
    if missing:
        raise DatasetError(f"{path}: no column(s) {missing}; the header has {header}")
    paths = [path.parent / row[image_column] for row in rows]
    if len(label_columns) == 1:
        samples = _single_label(paths, [row[label_columns[0]].strip() for row in rows])
    else:
        cells = [[row[c].strip() for c in label_columns] for row in rows]
        samples = Samples(paths, multilabel_targets(cells, uncertain, seed, str(path)), "multilabel",
                          tuple(label_columns))
    return replace(samples, **{field: np.asarray([row[column].strip() for row in rows], dtype=object)
                               for field, column in (("split", "split"), ("groups", "group")) if column in header})


def _single_label(paths: list[Path], values: list[str]) -> Samples:
    if set(values) <= {"0", "1", "0.0", "1.0"}:
        return Samples(paths, np.asarray([int(float(v)) for v in values]), "binary", ("0", "1"))
    classes = tuple(sorted(set(values)))
    ids = {name: i for i, name in enumerate(classes)}
    return Samples(paths, np.asarray([ids[v] for v in values], dtype=np.int64), "multiclass", classes)


def read_npz(path: str | Path) -> dict[str, Samples]:
    """A MedMNIST-style ``.npz``: ``{split}_images`` uint8 (N, H, W[, 3]), ``{split}_labels`` int (N, L).

    Returns:
        ``{"train", "val", "test"}`` -> Samples (the file's own splits). L == 1: binary for 0/1 labels,
        else multiclass; L > 1: multilabel.
    """
    with np.load(Path(path)) as data:
        arrays = {k: data[k] for k in data.files}
    splits = [s for s in ("train", "val", "test") if f"{s}_images" in arrays]
    if "train" not in splits or "test" not in splits:
        raise DatasetError(f"{path}: needs train_images/train_labels and test_images/test_labels arrays")
    labels = np.concatenate([arrays[f"{s}_labels"].reshape(len(arrays[f"{s}_labels"]), -1) for s in splits])
    task, classes = _npz_task(labels)
    out = {}
    for split in splits:
        y = arrays[f"{split}_labels"].reshape(len(arrays[f"{split}_labels"]), -1)
        targets = y.astype(np.float32) if task == "multilabel" else y[:, 0].astype(np.int64)
        out[split] = Samples(arrays[f"{split}_images"], targets, task, classes)
    return out


def _npz_task(labels: np.ndarray) -> tuple[str, tuple[str, ...]]:
    if labels.shape[1] > 1:
        return "multilabel", tuple(str(i) for i in range(labels.shape[1]))
    count = int(labels.max()) + 1
    return ("binary" if count <= 2 else "multiclass"), tuple(str(i) for i in range(max(count, 2)))


def read_segmentation_pairs(image_dir: str | Path, mask_dir: str | Path) -> Samples:
    """Images and binary masks matched by file stem (mask pixels > 0 are foreground).

    Raises:
        DatasetError: A path that is not a folder, an image without a mask, or no pairs at all.
    """
    for folder, role in ((image_dir, "the images"), (mask_dir, "--masks")):
        if not Path(folder).is_dir():
            raise DatasetError(f"{folder} ({role}) is not a folder: give a folder of images and, with --masks, a "
                               "folder of masks named like them")
    masks = {_stem(p): p for p in Path(mask_dir).iterdir() if _is_image(p)}
    images = sorted(p for p in Path(image_dir).iterdir() if _is_image(p))
    unmatched = [p.name for p in images if _stem(p) not in masks]
    if not images:
        raise DatasetError(f"{image_dir} holds no PNG/JPEG/TIFF/DICOM/NIfTI image: give the folder of the images")
    if unmatched:
        raise DatasetError(f"{image_dir}: {len(unmatched)} image(s) without a mask of the same name in {mask_dir} "
                           f"(e.g. {unmatched[0]}); name each mask like its image")
    targets = np.asarray([masks[_stem(p)] for p in images], dtype=object)
    return Samples(images, targets, "segmentation", ("foreground",))


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem
