"""Deterministic splits and label-fraction subsets; the indices are written next to the results.

``split_indices``: one seeded permutation; the first ``test`` share is the test set, then the first ``val`` share
of the rest is the validation set, the remainder the training set (each sorted). With groups (patients, studies,
volumes) the permutation is over the group ids and whole groups are taken until a share is met, so no group
crosses splits. A dataset's official split (``Samples.split``) is used as given; where it has only train and test,
validation is carved (grouped) from train. ``label_fraction`` keeps ``max(1, round(fraction * n))`` indices of the
*training* split only (whole groups when groups are given), chosen by its own seeded permutation, so the
validation and test sets never change with the fraction.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..store.atomic import write_text_atomic
from ..errors import DatasetError, DatasetSplitError
from .data import Samples

SPLIT_NAMES = ("train", "val", "test")

SPLITS_FILE = "splits.json"


def split_indices(n: int, *, seed: int, test: float = 0.2, val: float = 0.2) -> dict[str, np.ndarray]:
    """Train / val / test indices of ``n`` samples (see the module docstring for the rule)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test))
    rest = perm[n_test:]
    n_val = int(round(len(rest) * val))
    return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.sort(perm[:n_test])}


def grouped_indices(groups: np.ndarray, *, seed: int, test: float = 0.2, val: float = 0.2) -> dict[str, np.ndarray]:
    """Train / val / test indices with whole groups: a seeded permutation of the unique group ids; groups go to
    test until ``round(n * test)`` images are reached, then to val until ``round(rest * val)``, then train."""
    order = _group_order(groups, seed)
    n_test = int(round(len(groups) * test))
    n_val = int(round((len(groups) - n_test) * val))
    test_idx, rest = _take_groups(order, n_test)
    val_idx, train_groups = _take_groups(rest, n_val)
    train_idx = np.concatenate(train_groups) if train_groups else np.zeros(0, np.int64)
    return {"train": np.sort(train_idx), "val": np.sort(val_idx), "test": np.sort(test_idx)}


def _group_order(groups: np.ndarray, seed: int) -> list[np.ndarray]:
    """The index arrays of each group, in a seeded random order of the (sorted) group ids."""
    names, inverse = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(names))]
    return [members[g] for g in np.random.default_rng(seed).permutation(len(names))]


def _take_groups(order: list[np.ndarray], count: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Whole groups from the front of ``order`` until ``count`` images are taken; (taken indices, the rest)."""
    taken, total, cut = [], 0, 0
    while cut < len(order) and total < count:
        taken.append(order[cut])
        total += len(order[cut])
        cut += 1
    return (np.concatenate(taken) if taken else np.zeros(0, np.int64)), order[cut:]


def check_run(data: object, *, label_fraction: float = 1.0, trials: int = 1) -> None:
    """What a protocol call checks before it loads a model: data already read, a fraction in (0, 1], trials >= 1.

    Raises:
        DatasetError: A path given as data, a label fraction outside (0, 1], or fewer than one trial.

    Example:
        >>> check_run("chest_xrays/")  # doctest: +SKIP
        DatasetError: data is the path chest_xrays/: read it first with ssl_zoo.read_dataset('chest_xrays/')
    """
    if isinstance(data, (str, Path)):
        raise DatasetError(f"data is the path {data}: read it first with ssl_zoo.read_dataset({str(data)!r})")
    if not 0 < label_fraction <= 1:
        raise DatasetError(f"label fraction {label_fraction} is outside (0, 1]; give e.g. 0.1 for 10 % of the labels")
    if trials < 1:
        raise DatasetError(f"trials={trials}: give 1 or more")


def label_fraction(train: np.ndarray, fraction: float, *, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """The sorted subset of ``train`` kept at ``fraction`` (0 < fraction <= 1) of the labels.

    With ``groups`` (one id per element of ``train``) whole groups are kept, in a seeded order, until
    ``round(fraction * n)`` images are reached.
    """
    if not 0 < fraction <= 1:
        raise DatasetError(f"label fraction {fraction} is outside (0, 1]; give e.g. 0.1 for 10 % of the labels")
    train = np.asarray(train)
    keep = max(1, int(round(len(train) * fraction)))
    if groups is None:
        return np.sort(np.random.default_rng(seed).permutation(train)[:keep])
    taken, _ = _take_groups(_group_order(groups, seed), keep)
    return np.sort(train[taken])


def make_splits(data: Samples | dict[str, Samples], *, seed: int, test: float = 0.2,
                val: float = 0.2) -> tuple[dict[str, Samples], dict[str, list[int]]]:
    """Train / val / test ``Samples`` and their indices.

    A single ``Samples`` with an official ``split`` keeps it (val carved from train by ``val`` when missing);
    otherwise it is split by ``split_indices``, or by ``grouped_indices`` when it has ``groups``. A dict of the
    dataset's own splits (``.npz``) is kept; when it has no ``val``, the validation set is a seeded ``val`` share
    of its training split.

    Raises:
        DatasetSplitError: An empty split, a sample outside train/val/test, or (for a card) a split with no
            positive of a scored finding.
    """
    if isinstance(data, Samples):
        idx = _official(data, seed, val) if data.split is not None else _seeded(data, seed, test, val)
        parts = _non_empty({k: data.subset(v) for k, v in idx.items()})
        _check_positives(parts)
        return parts, {k: v.tolist() for k, v in idx.items()}
    parts = dict(data)
    index = {k: list(range(len(v))) for k, v in parts.items()}
    if "val" not in parts:
        idx = split_indices(len(parts["train"]), seed=seed, test=0.0, val=val)
        train = parts["train"]
        parts["train"], parts["val"] = train.subset(idx["train"]), train.subset(idx["val"])
        index["train"], index["val"] = idx["train"].tolist(), idx["val"].tolist()
    return _non_empty(parts), index


def _seeded(data: Samples, seed: int, test: float, val: float) -> dict[str, np.ndarray]:
    if data.groups is None:
        return split_indices(len(data), seed=seed, test=test, val=val)
    return grouped_indices(data.groups, seed=seed, test=test, val=val)


def _official(data: Samples, seed: int, val: float) -> dict[str, np.ndarray]:
    """The given split; a missing val is carved from train (grouped when groups are given)."""
    split = np.asarray(data.split).astype(str)
    other = sorted(set(split) - set(SPLIT_NAMES))
    if other:
        raise DatasetSplitError(f"split value(s) {other} are not train, val or test; fix the split column or list")
    idx = {name: np.flatnonzero(split == name) for name in SPLIT_NAMES}
    if len(idx["val"]) == 0:
        train = idx["train"]
        groups = data.groups[train] if data.groups is not None else np.arange(len(train))
        carved = grouped_indices(groups, seed=seed, test=0.0, val=val)
        idx["train"], idx["val"] = train[carved["train"]], train[carved["val"]]
    return idx


def _check_positives(parts: dict[str, Samples]) -> None:
    """A card's every split needs a positive of each scored finding (binary: of the positive class)."""
    card = parts["train"].card
    if not card or parts["train"].task not in ("binary", "multilabel"):
        return
    scored = card.get("scored") or list(parts["train"].classes)
    for name, part in parts.items():
        hard = part.class_ids()
        if part.task == "binary":
            missing = [] if (hard == 1).any() else [part.classes[-1]]
        else:
            missing = [c for c in scored if not (hard[:, part.classes.index(c)] == 1).any()]
        if missing:
            raise DatasetSplitError(f"the {name} split of {card['name']} has no positive of {missing}; its AUC is "
                                    "undefined: use more data, another seed, or the official lists")


def _non_empty(parts: dict[str, Samples]) -> dict[str, Samples]:
    empty = [name for name, samples in parts.items() if len(samples) == 0]
    if empty:
        raise DatasetSplitError(f"the {'/'.join(empty)} split is empty; the dataset needs more images "
                                "(10 at the least)")
    return parts


def write_splits(out_dir: str | Path, record: dict) -> Path:
    """Write ``record`` (split indices, seeds, label-fraction subsets) as ``splits.json`` in ``out_dir``."""
    path = Path(out_dir) / SPLITS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=1) + "\n")
    return path
