"""Linear probe: scikit-learn logistic regression on frozen features (ssl-transfer ``linear.py`` protocol).

C is chosen over ``C_GRID`` (45 log-spaced values, 1e-6 .. 1e5) by the validation split's primary metric (AUC,
or accuracy where AUC is undefined; ties broken by accuracy), then the classifier is refit with that C on the
(label-fraction subsampled) training split and scored on the test split. Features are standardised with the
training statistics first, so one grid fits every backbone. Multilabel tasks fit one classifier per label
(one-vs-rest) with the shared C.
Trial ``t`` draws its label-fraction subset with seed ``seed + t``; the splits use ``seed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from ..progress import bar
from .backbone import load_backbone
from .data import Samples
from .features import extract_features
from .metrics import classification_metrics, primary_metric
from .preprocess import build_transform
from .report import report_trials
from .splits import label_fraction as subsample
from .splits import make_splits
from ..extras import extra_imports

C_GRID = np.logspace(-6, 5, 45)


def fit_classifier(x: np.ndarray, y: np.ndarray, task: str, C: float) -> Any:
    """A fitted scikit-learn pipeline (standardise + logistic regression) for ``task``."""
    with extra_imports():
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(C=C, max_iter=1000)
    if task == "multilabel":
        classifier = OneVsRestClassifier(classifier)
    return make_pipeline(StandardScaler(), classifier).fit(x, y)


def predict_scores(classifier: Any, x: np.ndarray, task: str, num_classes: int) -> np.ndarray:
    """Probabilities in the layout ``classification_metrics`` reads (all ``num_classes`` columns)."""
    proba = classifier.predict_proba(x)
    if task == "multilabel":
        return proba
    full = np.zeros((len(x), max(num_classes, 2)))
    full[:, classifier.classes_.astype(int)] = proba  # a class absent from the training subset scores 0
    return full[:, 1] if task == "binary" else full


def select_C(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], task: str,
             num_classes: int, *, grid: np.ndarray = C_GRID, progress: bool = True) -> tuple[float, list[float]]:
    """The C of ``grid`` with the best validation metric, and every grid score.

    Ties (common on small validation sets, where AUC saturates) go to the better accuracy, then to the smaller C:
    AUC alone would pick the smallest C, whose near-zero weights rank well but predict the majority class.
    """
    with extra_imports():
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train[0])
    x_train, x_val = scaler.transform(train[0]), scaler.transform(val[0])
    # warm start: each C starts from the previous solution, as ssl-transfer does; same optimum, fewer iterations
    classifier = LogisticRegression(max_iter=1000, warm_start=True)
    keys = []
    for C in bar(grid, progress=progress, desc="C grid"):
        classifier.set_params(C=float(C))
        fitted = (OneVsRestClassifier(classifier) if task == "multilabel" else classifier).fit(x_train, train[1])
        metrics = classification_metrics(task, val[1], predict_scores(fitted, x_val, task, num_classes))
        keys.append((primary_metric(metrics), metrics["accuracy"]))
    best = max(range(len(grid)), key=lambda i: keys[i])  # max() keeps the first of equal keys
    return float(grid[best]), [k[0] for k in keys]


def probe_features(feats: dict[str, np.ndarray], parts: dict[str, Samples], *, fraction: float, seed: int,
                   C: float | None = None, progress: bool = True) -> dict[str, Any]:
    """One probe trial on precomputed features: choose C, refit, score on test."""
    task, k = parts["train"].task, len(parts["train"].classes)
    keep = subsample(np.arange(len(parts["train"])), fraction, seed=seed)
    train = (feats["train"][keep], parts["train"].class_ids()[keep])
    if task != "multilabel" and len(np.unique(train[1])) < 2:
        raise DatasetError("the probe's training split has one class only; use a larger --label-fraction")
    val = (feats["val"], parts["val"].class_ids())
    grid_scores: list[float] = []
    if C is None:
        C, grid_scores = select_C(train, val, task, k, progress=progress)
    classifier = fit_classifier(*train, task, C)
    test = classification_metrics(task, parts["test"].class_ids(),
                                  predict_scores(classifier, feats["test"], task, k))
    return {"C": C, "C_grid_scores": grid_scores, "train_indices": keep.tolist(), "test": test}


def linear_probe(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
                 label_fraction: float = 1.0, trials: int = 1, seed: int = 0, C: float | None = None,
                 image_size: int | None = None, in_chans: int = 3, batch_size: int = 64, device: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """Linear-probe evaluation of ``model`` on ``data``.

    Args:
        model: A registry name or a model folder.
        data: ``Samples`` (split here with ``seed``) or the dataset's own ``{"train", "val"?, "test"}`` splits.
        out_dir: Where ``probe.json`` and ``splits.json`` are written (nothing written when None).
        label_fraction: Share of the training split used to fit (0 < f <= 1).
        trials: Repetitions with different label-fraction subsets (seed + t).
        seed: Seed of the splits and of trial 0.
        C: Skip the grid search and use this C.
        image_size: Override the registry preprocessing with a square resize to this size.
        in_chans: Model input channels (1 for grayscale stems).
        batch_size: Images per forward pass of the feature extraction.
        device: "cuda", "cpu", ...; default CUDA when present.
        progress: Progress bars on stderr.

    Returns:
        The record written to ``probe.json``: per-trial test metrics and their ``summary`` (``stats.summarize``).

    Example:
        >>> linear_probe("moco-v2", read_dataset("chest_xrays/"), out_dir="runs/probe", label_fraction=0.1)
    """
    from ..runtime import Speed

    backbone = load_backbone(model, in_chans=in_chans, progress=progress)
    transform = build_transform(backbone.folder, backbone.model.pretrained_cfg, image_size=image_size,
                                in_chans=in_chans)
    parts, index = make_splits(data, seed=seed)
    speed = Speed.fast(device)
    feats = {k: extract_features(backbone, v, transform, speed=speed, batch_size=batch_size, progress=progress)
             for k, v in parts.items()}
    runs = [probe_features(feats, parts, fraction=label_fraction, seed=seed + t, C=C, progress=progress)
            for t in range(trials)]
    return report_trials("linear-probe", model, parts, index, runs, seed=seed, label_fraction=label_fraction,
                         metrics=("accuracy", "auc"), out_dir=out_dir,
                         filename="probe.json")
