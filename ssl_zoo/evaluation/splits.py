"""Deterministic splits and label-fraction subsets; the indices are written next to the results.

``split_indices``: one seeded permutation; the first ``test`` share is the test set, then the first ``val`` share
of the rest is the validation set, the remainder the training set (each sorted). ``label_fraction`` keeps
``max(1, round(fraction * n))`` indices of the *training* split only, chosen by its own seeded permutation, so the
validation and test sets never change with the fraction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..store.atomic import write_text_atomic
from ..errors import DatasetError
from .data import Samples

SPLITS_FILE = "splits.json"


def split_indices(n: int, *, seed: int, test: float = 0.2, val: float = 0.2) -> dict[str, np.ndarray]:
    """Train / val / test indices of ``n`` samples (see the module docstring for the rule)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test))
    rest = perm[n_test:]
    n_val = int(round(len(rest) * val))
    return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.sort(perm[:n_test])}


def label_fraction(train: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """The sorted subset of ``train`` kept at ``fraction`` (0 < fraction <= 1) of the labels."""
    if not 0 < fraction <= 1:
        raise DatasetError(f"label fraction {fraction} is outside (0, 1]; give e.g. 0.1 for 10 % of the labels")
    keep = max(1, int(round(len(train) * fraction)))
    return np.sort(np.random.default_rng(seed).permutation(np.asarray(train))[:keep])


def make_splits(data: Samples | dict[str, Samples], *, seed: int, test: float = 0.2,
                val: float = 0.2) -> tuple[dict[str, Samples], dict[str, list[int]]]:
    """Train / val / test ``Samples`` and their indices.

    A single ``Samples`` is split by ``split_indices``. A dict of the dataset's own splits (``.npz``) is kept;
    when it has no ``val``, the validation set is a seeded ``val`` share of its training split.
    """
    if isinstance(data, Samples):
        idx = split_indices(len(data), seed=seed, test=test, val=val)
        return _non_empty({k: data.subset(v) for k, v in idx.items()}), {k: v.tolist() for k, v in idx.items()}
    parts = dict(data)
    index = {k: list(range(len(v))) for k, v in parts.items()}
    if "val" not in parts:
        idx = split_indices(len(parts["train"]), seed=seed, test=0.0, val=val)
        train = parts["train"]
        parts["train"], parts["val"] = train.subset(idx["train"]), train.subset(idx["val"])
        index["train"], index["val"] = idx["train"].tolist(), idx["val"].tolist()
    return _non_empty(parts), index


def _non_empty(parts: dict[str, Samples]) -> dict[str, Samples]:
    empty = [name for name, samples in parts.items() if len(samples) == 0]
    if empty:
        raise DatasetError(f"the {'/'.join(empty)} split is empty; the dataset needs more images (10 at the least)")
    return parts


def write_splits(out_dir: str | Path, record: dict) -> Path:
    """Write ``record`` (split indices, seeds, label-fraction subsets) as ``splits.json`` in ``out_dir``."""
    path = Path(out_dir) / SPLITS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path
