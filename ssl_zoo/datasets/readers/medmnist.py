"""MedMNIST ``<flag>[_<size>].npz``: its official train/val/test, its task, and download with the md5 check."""

from __future__ import annotations

import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from ...errors import ChecksumError, DatasetError, DatasetLabelError, DatasetLayoutError, OfflineError
from ...evaluation.data import Samples
from ..schema import Card
from .common import Request, samples

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")
ZENODO = "https://zenodo.org/records/10519652/files/{file}?download=1"


def npz_name(card: Card, size: int) -> str:
    """The official file name: ``<flag>.npz`` (28 px) or ``<flag>_<size>.npz``.

    Raises:
        DatasetError: A size MedMNIST does not publish.
    """
    if size not in SIZES:
        raise DatasetError(f"{card.name}: MedMNIST sizes are {SIZES}, not {size}")
    return f"{card.flag}.npz" if size == 28 else f"{card.flag}_{size}.npz"


def download(card: Card, root: Path, size: int, *, progress: bool = True) -> Path:
    """Fetch the card's ``.npz`` of ``size`` into ``root`` from Zenodo and check its published md5.

    Raises:
        OfflineError: ``SSL_ZOO_OFFLINE`` is set; the message says where to put the file.
        ChecksumError: The md5 differs; a downloaded file is removed, a file that was already there is kept.
    """
    import hashlib

    from ...store import cache
    from ...store.download import fetch

    name = npz_name(card, size)
    dest, url, md5 = root / name, ZENODO.format(file=name), card.files[name]
    if not dest.is_file() and cache.is_offline():
        raise OfflineError(f"offline: put {name} (md5 {md5}, from {url}) in {root}")
    existed = dest.is_file()
    fetch([url], dest, progress=progress, label=name)
    digest = hashlib.md5()
    with dest.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() == md5:
        return dest
    if existed:  # the user's own file (e.g. another medmnist version): report it, never delete it
        raise ChecksumError(f"{dest}: md5 {digest.hexdigest()} differs from MedMNIST's {md5}; kept it: move it "
                            "away to download the official file, or read it without download")
    dest.unlink()
    raise ChecksumError(f"{name}: md5 {digest.hexdigest()} differs from MedMNIST's {md5}; removed it, "
                        "download again")


def read_medmnist(card: Card, request: Request) -> Samples:
    """The three official splits of one file in one ``Samples`` (``split`` per image); 28-px images are
    upsampled to the card's size with NEAREST when loaded."""
    name = npz_name(card, request.size)
    path = request.root / name
    if not path.is_file() and request.download:
        path = download(card, request.root, request.size, progress=request.progress)
    if not path.is_file():
        raise DatasetLayoutError(f"{request.root}: missing file {name}; download it from {ZENODO.format(file=name)} "
                           f"(md5 {card.files[name]}) or pass download=True / `ssl-zoo datasets download "
                           f"{card.name} --root {request.root}`")
    with np.load(path) as data:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in data.files]
        if missing:
            raise DatasetError(f"{path}: no array(s) {missing}; a MedMNIST file holds train/val/test images+labels")
        images = np.concatenate([data[f"{s}_images"] for s in SPLITS])
        labels = [data[f"{s}_labels"].reshape(len(data[f"{s}_labels"]), -1) for s in SPLITS]
    counts = {s: len(x) for s, x in zip(SPLITS, labels)}
    if counts != dict(card.counts):
        warnings.warn(f"{name} has {counts} images, the official medmnist 3.x file {dict(card.counts)}: another "
                      "version (2.x Organ files differ) or a subset; results will not match the benchmark",
                      stacklevel=3)
    split = np.repeat(SPLITS, list(counts.values()))
    targets = _targets(card, np.concatenate(labels), str(path))
    upsample = card.intensity.upsample if request.size == 28 else None
    return samples(card, request, images, targets, split=split, groups=np.arange(len(split)),
                   file=name, official_counts=counts == dict(card.counts),
                   intensity=asdict(replace(card.intensity, upsample=upsample)))


def _targets(card: Card, labels: np.ndarray, where: str) -> np.ndarray:
    if card.task == "multilabel":
        if labels.shape[1] != len(card.classes) or not np.isin(labels, (0, 1)).all():
            raise DatasetLabelError(f"{where}: labels must be {len(card.classes)} columns of 0/1")
        return labels.astype(np.float32)
    ids = labels[:, 0].astype(np.int64)
    bad = sorted(set(ids.tolist()) - set(range(len(card.classes))))
    if bad:
        raise DatasetLabelError(f"{where}: unknown label value(s) {bad[:5]}; {card.name} has classes "
                                f"0..{len(card.classes) - 1}")
    return ids
