"""Datasets medical users have, read into one shape: ``Samples`` (images + targets + task).

``read_dataset`` reads a dataset card (``ssl_zoo.datasets``) or a plain file or folder (``file_readers``: an
image folder per class; a CSV of paths with one or many label columns; a MedMNIST-style ``.npz``; segmentation
pairs); ``load_item`` and ``ImageDataset`` turn the samples into pixels and tensors.

Uncertain labels (CheXpert writes ``-1``) follow ``UNCERTAIN_POLICIES``; blank cells are negative (0), as in
the CheXpert and BenchmarkTransferLearning code. Targets for training may be soft (``lsr-*``); metrics round
them at 0.5.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import DatasetError, DatasetLabelError
from .images import read_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".dcm", ".dicom", ".nii", ".nii.gz")
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
        split: Per-sample official split ("train", "val", "test") from a card's lists or a CSV ``split``
            column; None: the protocol splits with its seed.
        groups: Per-sample group id (patient, study, volume): no group crosses splits. None: one per image.
        card: What was read: {"name", "version", "convention", "metric", ...} of a dataset card (None for
            plain folders and files); protocols copy it into their results under "dataset".
        metric: The metric the papers report for this data ("auc", "accuracy", "mean_per_class_accuracy",
            "dice"); None: the protocol's own default.
        meta: Per-sample columns a card exposes besides the groups (e.g. "study", "view", "eye"), for
            multi-view analyses.
    """

    items: Sequence[Any] | np.ndarray
    targets: np.ndarray
    task: str
    classes: tuple[str, ...]
    split: np.ndarray | None = None
    groups: np.ndarray | None = None
    card: dict | None = None
    metric: str | None = None
    meta: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "Samples":
        """The samples at ``indices``, in that order (split, groups, card, metric and meta kept)."""
        idx = np.asarray(indices, dtype=np.int64)
        items = self.items[idx] if isinstance(self.items, np.ndarray) else [self.items[i] for i in idx]

        def pick(column: np.ndarray | None) -> np.ndarray | None:
            return None if column is None else np.asarray(column)[idx]

        meta = None if self.meta is None else {k: v[idx] for k, v in self.meta.items()}
        return Samples(items, self.targets[idx], self.task, self.classes, split=pick(self.split),
                       groups=pick(self.groups), card=self.card, metric=self.metric, meta=meta)

    def load(self, index: int) -> np.ndarray:
        """The uint8 pixels of item ``index``, with the card's intensity handling (e.g. MedMNIST upsampling)."""
        image = load_item(self.items[index])
        upsample = ((self.card or {}).get("intensity") or {}).get("upsample")
        return upsample_nearest(image, upsample) if upsample else image

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
        if self.card:  # a card's intensity handling (e.g. NEAREST upsampling) changes the pixels
            digest.update(repr(sorted(self.card.get("intensity", {}).items())).encode())
        return digest.hexdigest()

    def class_ids(self) -> np.ndarray:
        """Hard targets: int class ids, or 0/1 labels for multilabel (soft labels rounded at 0.5)."""
        if self.task == "multilabel":
            return (np.asarray(self.targets) >= 0.5).astype(np.int64)
        return np.asarray(self.targets, dtype=np.int64)


def multilabel_targets(cells: list[list[str]], uncertain: str, seed: int, where: str = "labels") -> np.ndarray:
    """Float labels from CSV cells: 1 -> 1, 0 and blank -> 0, -1 -> the ``uncertain`` policy (one seeded uniform
    draw per uncertain cell).

    Raises:
        DatasetLabelError: A value other than 1, 0, -1 (also written 1.0, 0.0, -1.0) or blank.
    """
    known = {"": 0.0, "1": 1.0, "1.0": 1.0, "0": 0.0, "0.0": 0.0, "-1": -1.0, "-1.0": -1.0}
    bad = sorted({v for row in cells for v in row if v not in known})
    if bad:
        raise DatasetLabelError(f"{where}: unknown label value(s) {bad[:5]}; expected 1.0, 0.0, -1.0 or blank")
    values = np.asarray([[known[v] for v in row] for row in cells], dtype=np.float32).reshape(len(cells), -1)
    low, high = UNCERTAIN_POLICIES[uncertain]
    unsure = values == -1
    values[unsure] = np.random.default_rng(seed).uniform(low, high, size=int(unsure.sum()))
    return values


def read_dataset(name_or_path: str | Path, *, root: str | Path | None = None, masks: str | Path | None = None,
                 **options: Any) -> Samples | dict[str, Samples]:
    """A dataset card (``name_or_path`` a card name, ``root`` its folder) or a path: ``.npz``, ``.csv``, a folder
    of class folders, or images + ``masks``.

    Args:
        name_or_path: A card name (``ssl-zoo datasets``) or a path.
        root: The folder holding the card's layout (``ssl-zoo datasets info NAME``); required for a card.
        masks: Segmentation: the folder of masks named like the images in ``name_or_path``.
        **options: For a card: ``convention``, ``uncertain``, ``views``, ``size``, ``seed``, ``download``,
            ``progress`` (see ``ssl_zoo.datasets.read_card``); for a CSV: ``image_column``, ``label_columns``,
            ``uncertain``, ``seed``. Options set to None are ignored.

    Raises:
        DatasetError: Nothing at the path, a card name without ``root``, or an unreadable dataset.

    Example:
        >>> read_dataset("chexpert", root="/data/CheXpert-v1.0-small", convention="u-ones")
    """
    options = {k: v for k, v in options.items() if v is not None}
    if root is not None:
        from ..datasets import read_card

        return read_card(str(name_or_path), root, **options)
    from .file_readers import read_csv_labels, read_image_folder, read_npz, read_segmentation_pairs

    card_only = sorted(set(options) & {"convention", "views", "size", "download"})
    if card_only:
        raise DatasetError(f"{card_only} apply to a dataset card only; give a card name with --root DIR")
    path = Path(name_or_path)
    if not path.exists() and _is_card(str(name_or_path)):
        raise DatasetError(f"{name_or_path} is a dataset card: give --root DIR (Python: root=) with the folder "
                           f"holding it; `ssl-zoo datasets info {name_or_path}` shows the layout")
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found; give a class folder, a CSV, an .npz, images + --masks, or a "
                           "card name with --root DIR (`ssl-zoo datasets` lists the cards)")
    csv_options = {k: v for k, v in options.items() if k in ("image_column", "label_columns", "uncertain", "seed")}
    if masks is not None:
        return read_segmentation_pairs(path, masks)
    if path.suffix.lower() == ".npz":
        return read_npz(path)
    if path.suffix.lower() == ".csv":
        return read_csv_labels(path, **csv_options)
    if not path.is_dir():
        raise DatasetError(f"{path} is a {path.suffix or 'suffix-less'} file: give a folder of class folders, "
                           "a .csv of image paths and labels, or a MedMNIST-style .npz")
    return read_image_folder(path)


def _is_card(name: str) -> bool:
    from ..datasets import get_card
    from ..errors import UnknownDatasetError

    try:
        get_card(name)
    except UnknownDatasetError:
        return False
    return True


def load_item(item: Any) -> np.ndarray:
    """The uint8 pixels of one item: an array row as it is, an item with ``load()`` (a CT slice, a union of
    masks) through it, a path through ``read_image``."""
    if isinstance(item, np.ndarray):
        return item
    return item.load() if hasattr(item, "load") else read_image(item)


def upsample_nearest(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` enlarged to ``size`` x ``size`` with NEAREST (as ``PIL.Image.NEAREST``), when smaller.

    MedMNIST's benchmark upsamples its 28-px images this way; an integer factor repeats each pixel.
    """
    from PIL import Image

    if image.shape[0] >= size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.NEAREST))


class ImageDataset:
    """A map-style dataset over ``Samples``: (transformed image tensor, float target tensor)."""

    def __init__(self, samples: Samples, transform: Callable[[np.ndarray], Any]) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        image = self.transform(self.samples.load(index))
        return image, torch.as_tensor(np.asarray(self.samples.targets[index]), dtype=torch.float32)
