"""Datasets medical users have, read into one shape: ``Samples`` (images + targets + task).

Readers: an image folder per class; a CSV of paths with one or many label columns (ChestX-ray14 / CheXpert
style); a MedMNIST-style ``.npz``; segmentation pairs (an image folder and a mask folder, matched by name).

Uncertain labels (CheXpert writes ``-1``) follow ``UNCERTAIN_POLICIES``; blank cells are negative (0), as in
the CheXpert and BenchmarkTransferLearning code. Targets for training may be soft (``lsr-*``); metrics round
them at 0.5.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DatasetError
from .images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom", ".nii", ".nii.gz")
TASKS = ("binary", "multiclass", "multilabel", "segmentation")

# CheXpert "-1": ones (U-Ones), zeros (U-Zeros), or label-smoothed draws from these ranges (seeded).
UNCERTAIN_POLICIES: dict[str, tuple[float, float]] = {
    "zeros": (0.0, 0.0), "ones": (1.0, 1.0), "lsr-ones": (0.55, 0.85), "lsr-zeros": (0.0, 0.3)}


@dataclass(frozen=True)
class Samples:
    """Images and their targets.

    Attributes:
        items: Image paths, or a uint8 array (N, H, W[, 3]) of pixels (``.npz`` data).
        targets: (N,) int class ids (binary, multiclass); (N, L) float labels (multilabel);
            (N,) mask paths (segmentation).
        task: One of ``TASKS``.
        classes: Class or label names.
        groups: Per-sample group id (patient / study); None: one per image.
    """

    items: Sequence[Any] | np.ndarray
    targets: np.ndarray
    task: str
    classes: tuple[str, ...]
    groups: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "Samples":
        """The samples at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64)
        items = self.items[idx] if isinstance(self.items, np.ndarray) else [self.items[i] for i in idx]
        groups = None if self.groups is None else np.asarray(self.groups)[idx]
        return Samples(items, self.targets[idx], self.task, self.classes, groups=groups)

    @property
    def num_outputs(self) -> int:
        """Width of the model head: 1 for binary and segmentation, else the number of classes or labels."""
        return 1 if self.task in ("binary", "segmentation") else len(self.classes)

    def fingerprint(self) -> str:
        """A sha256 of the items and targets: the key of cached features."""
        digest = hashlib.sha256(self.task.encode())
        if isinstance(self.items, np.ndarray):
            digest.update(np.ascontiguousarray(self.items).tobytes())
        else:
            for item in self.items:
                path = Path(item)
                stat = path.stat()
                digest.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        digest.update(np.asarray(self.targets).astype(str).tobytes())
        return digest.hexdigest()

    def class_ids(self) -> np.ndarray:
        """Hard targets: int class ids, or 0/1 labels for multilabel (soft labels rounded at 0.5)."""
        if self.task == "multilabel":
            return (np.asarray(self.targets) >= 0.5).astype(np.int64)
        return np.asarray(self.targets, dtype=np.int64)


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
        raise DatasetError(f"{root}: needs one sub-folder of images per class (at least two); see `ssl-zoo probe -h`")
    paths, labels = [], []
    for class_id, folder in enumerate(folders):
        files = sorted(p for p in folder.iterdir() if _is_image(p))
        paths += files
        labels += [class_id] * len(files)
    task = "binary" if len(folders) == 2 else "multiclass"
    return Samples(paths, np.asarray(labels, dtype=np.int64), task, tuple(p.name for p in folders))


def read_csv_labels(path: str | Path, *, image_column: str | None = None, label_columns: Sequence[str] | None = None,
                    uncertain: str = "zeros", seed: int = 0) -> Samples:
    """A CSV with an image path column and label columns.

    One label column of 0/1 is a binary task, one column of other values a multiclass task (classes sorted),
    several columns a multilabel task. Paths are relative to the CSV's folder.

    Args:
        path: The CSV file (header row required).
        image_column: Default: the first column.
        label_columns: Default: every other column.
        uncertain: Policy for ``-1`` cells (multilabel): a key of ``UNCERTAIN_POLICIES``.
        seed: Seed of the ``lsr-*`` draws.

    Raises:
        DatasetError: Unknown columns or policy, or an empty file.
    """
    path = Path(path)
    if uncertain not in UNCERTAIN_POLICIES:
        raise DatasetError(f"unknown uncertain-label policy {uncertain!r}; use one of {sorted(UNCERTAIN_POLICIES)}")
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DatasetError(f"{path}: no rows; the CSV needs a header and one row per image")
    header = list(rows[0])
    image_column = image_column or header[0]
    label_columns = list(label_columns or [c for c in header if c != image_column])
    missing = [c for c in [image_column, *label_columns] if c not in header]
    if missing:
        raise DatasetError(f"{path}: no column(s) {missing}; the header has {header}")
    paths = [path.parent / row[image_column] for row in rows]
    if len(label_columns) == 1:
        return _single_label(paths, [row[label_columns[0]].strip() for row in rows])
    cells = [[row[c].strip() for c in label_columns] for row in rows]
    return Samples(paths, _multilabel(cells, uncertain, seed), "multilabel", tuple(label_columns))


def _single_label(paths: list[Path], values: list[str]) -> Samples:
    if set(values) <= {"0", "1", "0.0", "1.0"}:
        return Samples(paths, np.asarray([int(float(v)) for v in values]), "binary", ("0", "1"))
    classes = tuple(sorted(set(values)))
    ids = {name: i for i, name in enumerate(classes)}
    return Samples(paths, np.asarray([ids[v] for v in values], dtype=np.int64), "multiclass", classes)


def _multilabel(cells: list[list[str]], uncertain: str, seed: int) -> np.ndarray:
    """Float labels: blank -> 0, -1 -> the policy (one seeded uniform draw per uncertain cell)."""
    values = np.asarray([[float(v) if v else 0.0 for v in row] for row in cells], dtype=np.float32)
    low, high = UNCERTAIN_POLICIES[uncertain]
    unsure = values == -1
    values[unsure] = np.random.default_rng(seed).uniform(low, high, size=int(unsure.sum()))
    return values


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
        DatasetError: An image without a mask, or no pairs at all.
    """
    masks = {_stem(p): p for p in Path(mask_dir).iterdir() if _is_image(p)}
    images = sorted(p for p in Path(image_dir).iterdir() if _is_image(p))
    unmatched = [p.name for p in images if _stem(p) not in masks]
    if unmatched or not images:
        raise DatasetError(f"{image_dir}: {len(unmatched)} image(s) without a mask of the same name in {mask_dir} "
                           f"(e.g. {unmatched[:1]}); name each mask like its image")
    targets = np.asarray([masks[_stem(p)] for p in images], dtype=object)
    return Samples(images, targets, "segmentation", ("foreground",))


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def read_dataset(path: str | Path, *, masks: str | Path | None = None,
                 **csv_options: Any) -> Samples | dict[str, Samples]:
    """Pick the reader by what ``path`` is: ``.npz``, ``.csv``, a folder of class folders, or images + ``masks``."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found; give a class folder, a CSV, an .npz or images + --masks")
    if masks is not None:
        return read_segmentation_pairs(path, masks)
    if path.suffix.lower() == ".npz":
        return read_npz(path)
    if path.suffix.lower() == ".csv":
        return read_csv_labels(path, **csv_options)
    return read_image_folder(path)


def load_item(item: Any) -> np.ndarray:
    """The uint8 pixels of one item: an array row as it is, a path through ``read_image``."""
    return item if isinstance(item, np.ndarray) else read_image(item)


class ImageDataset:
    """A map-style dataset over ``Samples``: (transformed image tensor, float target tensor)."""

    def __init__(self, samples: Samples, transform: Callable[[np.ndarray], Any]) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        image = self.transform(load_item(self.samples.items[index]))
        return image, torch.as_tensor(np.asarray(self.samples.targets[index]), dtype=torch.float32)
