"""The train / val / test splits the papers' evaluation code draws (ssl-transfer ``get_train_valid_loader``).

Validation: the dataset's own val split when it has one (a dict with "val", or ``Samples.split`` naming "val");
otherwise ``floor(val_fraction * n)`` indices of train: the first ones of ``list(range(n))`` shuffled with
``np.random.RandomState(seed).shuffle`` (upstream calls ``np.random.seed(0); np.random.shuffle(indices)``; here the
seed is the run's). A dataset with no test split gets a seeded 20 % test split first (``splits.split_indices``).
Where the dataset names groups (patients, studies: ``Samples.groups``), the test split and the validation split take
whole groups (``splits.grouped_indices``): upstream shuffles images, which lets one patient straddle two splits.
"""

from __future__ import annotations

import math

import numpy as np

from .data import Samples
from ..errors import DatasetError
from .splits import grouped_indices, split_indices


def upstream_val_indices(n: int, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices of ``n`` training samples by the upstream rule (module docstring), in drawn order."""
    indices = list(range(n))
    np.random.RandomState(seed).shuffle(indices)
    split = int(math.floor(fraction * n))
    return np.asarray(indices[split:], dtype=np.int64), np.asarray(indices[:split], dtype=np.int64)


def pool_indices(samples: Samples, *, seed: int, test: float) -> dict[str, np.ndarray]:
    """Seeded train / test indices of one pool of images: by image, or by whole groups when it has groups."""
    if samples.groups is None:
        return split_indices(len(samples), seed=seed, test=test, val=0.0)
    return grouped_indices(np.asarray(samples.groups), seed=seed, test=test, val=0.0)


def carve_validation(train: Samples, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions in ``train``: the upstream image shuffle, or whole groups when it has groups."""
    if train.groups is None:
        return upstream_val_indices(len(train), fraction=fraction, seed=seed)
    idx = pool_indices(train, seed=seed, test=fraction)
    return idx["train"], idx["test"]


def given_parts(data: Samples | dict[str, Samples], seed: int) -> tuple[dict[str, Samples], dict[str, list[int]]]:
    """The dataset's own splits (a dict, or ``Samples.split``), else a seeded 20 % test split of the one pool."""
    if isinstance(data, dict):
        return dict(data), {k: list(range(len(v))) for k, v in data.items()}
    names = data.split
    if names is None:
        idx = pool_indices(data, seed=seed, test=0.2)
        chosen = {"train": idx["train"], "test": idx["test"]}
    else:
        chosen = {k: np.flatnonzero(np.asarray(names) == k) for k in ("train", "val", "test")}
        chosen = {k: v for k, v in chosen.items() if len(v)}
    return {k: data.subset(v) for k, v in chosen.items()}, {k: v.tolist() for k, v in chosen.items()}


def paper_splits(data: Samples | dict[str, Samples], *, seed: int, val_fraction: float = 0.2) -> tuple[dict[str, Samples], dict[str, list[int]]]:
    """Train / val / test ``Samples`` and their indices, validation drawn as upstream.

    Args:
        data: ``Samples`` (with or without ``split``) or a dict of the dataset's own splits.
        seed: The run's seed (test split and validation shuffle).
        val_fraction: Share of train drawn as validation where the dataset has no val split.

    Returns:
        The parts and their indices (into ``data``, or into each given split for a dict).
    """
    parts, index = given_parts(data, seed)
    if "train" not in parts or "test" not in parts:
        raise DatasetError(f"the dataset's splits are {sorted(parts)}; it needs at least train and test")
    if "val" not in parts:
        train_idx, val_idx = carve_validation(parts["train"], fraction=val_fraction, seed=seed)
        base = np.asarray(index["train"])
        parts["train"], parts["val"] = parts["train"].subset(train_idx), parts["train"].subset(val_idx)
        index["train"], index["val"] = base[train_idx].tolist(), base[val_idx].tolist()
    empty = sorted(k for k, v in parts.items() if len(v) == 0)
    if empty:
        raise DatasetError(f"the {'/'.join(empty)} split is empty; the dataset needs more images (10 at the least)")
    return parts, index


def merge(first: Samples, second: Samples) -> Samples:
    """``first`` followed by ``second`` (one training pool: upstream's ``trainval``); card, metric, groups kept."""
    import dataclasses

    def join(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
        return None if a is None or b is None else np.concatenate([np.asarray(a), np.asarray(b)])

    items = join(first.items, second.items) if isinstance(first.items, np.ndarray) \
        else list(first.items) + list(second.items)
    meta = None if first.meta is None or second.meta is None \
        else {k: join(v, second.meta[k]) for k, v in first.meta.items() if k in second.meta}
    return dataclasses.replace(first, items=items, targets=join(first.targets, second.targets),
                               split=join(first.split, second.split), groups=join(first.groups, second.groups),
                               meta=meta)
