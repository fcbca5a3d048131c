"""Linear probe: logistic regression on frozen features, as ssl-transfer's ``linear.py`` (preset ``ssl-transfer``).

Procedure (``LinearSettings`` defaults = upstream):

1. features of train, val and test through the frozen backbone; transform ``Resize(224, bicubic)`` +
   ``CenterCrop(224)`` + the paper's normalisation rule (``preprocess.ImageSettings``); features stay RAW;
2. validation: the dataset's own val split, else the first 20 % of the training indices shuffled by
   ``np.random.RandomState(seed).shuffle`` (``paper_splits``); upstream fixes seed 0, here it is the run's seed;
3. one ``LogisticRegression(solver="lbfgs", warm_start=True)`` (max_iter 100) fitted on train for every
   ``wd`` of ``torch.logspace(-6, 5, 45)`` in that order with ``C = 1 / wd`` (C from 1e6 down to 1e-5), each fit
   warm-started from the previous one; the C with the best validation score wins (strictly better only, so ties go to
   the earlier, larger C); the score is accuracy, or mean per-class accuracy (confusion-matrix diagonal over row sums)
   when the dataset asks for it (``Samples.metric``);
4. the same classifier (still warm) refit on train + val with that C, scored on test.

Upstream bugs fixed: ``multi_class="multinomial"`` is rejected by current scikit-learn; for two classes the
multinomial fit (two weight vectors, each penalised) equals a binomial fit with ``2 C``, which is used, so binary
results match the upstream objective; ``best_score = 0`` left no C chosen when every validation score was 0 (here the
first C is kept); the label-smoothed soft labels upstream cast to int (all become 0) are rounded at 0.5 instead.
Multilabel tasks (upstream: VOC mAP) fit one warm-started classifier per label with the shared C, selected by
macro AUC. Trial ``t`` draws its label-fraction subset of train with seed ``seed + t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, PresetError
from ..extras import extra_imports
from ..progress import bar
from .backbone import load_backbone
from .data import Samples
from .features import extract_features
from .metrics import SCORES, classification_metrics, dataset_metric
from .paper_splits import paper_splits
from .preprocess import ImageSettings, paper_transform
from .presets import resolve
from .report import report_trials
from .splits import check_run, label_fraction as subsample


@dataclass(frozen=True)
class LinearSettings(ImageSettings):
    """Settings of the linear probe (defaults: ssl-transfer ``linear.py``).

    Attributes:
        features: "raw" (upstream) or "standardized" (z-scored with training statistics).
        max_iter: lbfgs iterations per fit (scikit-learn's default 100, as upstream).
        warm_start: Each grid fit starts from the previous solution (upstream: True).
        wd_start: log10 of the first weight decay; ``C = 1 / wd``.
        wd_stop: log10 of the last weight decay.
        wd_num: Grid size (45).
        val_fraction: Share of train drawn as validation when the dataset has no val split.
        metric: Selection metric: "accuracy", "mean_per_class_accuracy", "auc", or "dataset" (the dataset's
            ``Samples.metric`` when it is one of these, else accuracy; macro AUC for multilabel).
        refit: "train+val" (upstream) or "train".
        C: Skip the search and use this C.
        batch_size: Images per forward pass of the feature extraction.
    """

    features: str = "raw"
    max_iter: int = 100
    warm_start: bool = True
    wd_start: float = -6.0
    wd_stop: float = 5.0
    wd_num: int = 45
    val_fraction: float = 0.2
    metric: str = "dataset"
    refit: str = "train+val"
    C: float | None = None
    batch_size: int = 64


def c_grid(settings: LinearSettings) -> np.ndarray:
    """``1 / wd`` for ``wd`` in ``torch.logspace(wd_start, wd_stop, wd_num)`` (float32, as upstream), in that order."""
    import torch

    return np.array([1.0 / w.item() for w in torch.logspace(settings.wd_start, settings.wd_stop, settings.wd_num)])


def selection_metric(settings: LinearSettings, samples: Samples) -> str:
    """The metric C is chosen by: the setting, or the dataset's own where the setting is "dataset"."""
    if settings.metric != "dataset":
        if settings.metric not in SCORES:
            raise PresetError(f"linear metric {settings.metric!r} is not one of {SCORES} or 'dataset'")
        return settings.metric
    return dataset_metric(samples.task, samples.metric)


class Probe:
    """Warm-started lbfgs logistic regression(s): one multinomial model, or one per label (multilabel)."""

    def __init__(self, task: str, num_classes: int, settings: LinearSettings) -> None:
        with extra_imports():
            from sklearn.linear_model import LogisticRegression

        self.task, self.num_classes = task, num_classes
        count = num_classes if task == "multilabel" else 1
        self.models = [LogisticRegression(solver="lbfgs", max_iter=settings.max_iter,
                                          warm_start=settings.warm_start) for _ in range(count)]

    def fit(self, x: np.ndarray, y: np.ndarray, C: float) -> "Probe":
        """Fit every model with ``C`` (doubled for a two-class multinomial model; see the module docstring)."""
        import warnings

        with extra_imports():
            from sklearn.base import clone
            from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # upstream ignores it too: max_iter stays 100
            for j, model in enumerate(self.models):
                labels = y[:, j] if self.task == "multilabel" else y
                present = np.unique(labels)
                if len(present) < 2:
                    raise DatasetError(f"label {j} has one value only in the probe's training data; use a larger "
                                       "--label-fraction or drop that label")
                if hasattr(model, "classes_") and not np.array_equal(model.classes_, present):
                    model = self.models[j] = clone(model)  # another class set (val brings a class): a cold start
                model.set_params(C=2 * C if len(present) == 2 and self.task != "multilabel" else C)
                model.fit(x, labels)
        return self

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Probabilities in the layout ``classification_metrics`` reads."""
        if self.task == "multilabel":
            return np.stack([m.predict_proba(x)[:, 1] for m in self.models], 1)
        model = self.models[0]
        full = np.zeros((len(x), max(self.num_classes, 2)))
        full[:, model.classes_.astype(int)] = model.predict_proba(x)  # a class absent from training scores 0
        return full[:, 1] if self.task == "binary" else full


def search_C(probe: Probe, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
             grid: np.ndarray, metric: str, *, progress: bool = True) -> tuple[float, list[float]]:
    """Fit ``probe`` on train for each C of ``grid`` in order (warm); the first C with the best val score, all scores."""
    scores = []
    for C in bar(grid, progress=progress, desc="C grid"):
        probe.fit(*train, float(C))
        scores.append(classification_metrics(probe.task, val[1], probe.scores(val[0]))[metric])
    finite = [s if np.isfinite(s) else -np.inf for s in scores]
    return float(grid[int(np.argmax(finite))]), scores  # argmax keeps the first of equal scores


def probe_features(feats: dict[str, np.ndarray], parts: dict[str, Samples], settings: LinearSettings, *,
                   fraction: float, seed: int, progress: bool = True) -> dict[str, Any]:
    """One probe trial on precomputed features: search C on val, refit on train (+ val), score on test; the
    per-image test probabilities (test-split order) come back as ``test_scores``."""
    task, k = parts["train"].task, len(parts["train"].classes)
    keep = subsample(np.arange(len(parts["train"])), fraction, seed=seed, groups=parts["train"].groups)
    train = (feats["train"][keep], parts["train"].class_ids()[keep])
    if task != "multilabel" and len(np.unique(train[1])) < 2:
        raise DatasetError("the probe's training split has one class only; use a larger --label-fraction")
    val, test_x = (feats["val"], parts["val"].class_ids()), feats["test"]
    if settings.features == "standardized":
        mean, std = train[0].mean(0), train[0].std(0) + 1e-12
        train, val, test_x = ((train[0] - mean) / std, train[1]), ((val[0] - mean) / std, val[1]), (test_x - mean) / std
    probe, metric, C, grid_scores = Probe(task, k, settings), selection_metric(settings, parts["train"]), settings.C, []
    if C is None:
        C, grid_scores = search_C(probe, train, val, c_grid(settings), metric, progress=progress)
    final = (np.concatenate([train[0], val[0]]), np.concatenate([train[1], val[1]])) \
        if settings.refit == "train+val" else train
    scores = probe.fit(*final, C).scores(test_x)
    return {"C": C, "selected_by": metric, "C_grid_scores": grid_scores, "train_indices": keep.tolist(),
            "test": classification_metrics(task, parts["test"].class_ids(), scores),
            "test_scores": scores.astype(np.float32)}


def linear_probe(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
                 label_fraction: float = 1.0, trials: int = 1, seed: int = 0, preset: str | None = None,
                 in_chans: int = 3, device: str | None = None, progress: bool = True,
                 **overrides: Any) -> dict[str, Any]:
    """Linear-probe evaluation of ``model`` on ``data`` under a preset (default ssl-transfer).

    Args:
        model: A registry name, ``hf-hub:`` reference or model folder (resolved once).
        data: ``Samples`` (split here: test 20 % with ``seed``, val as the preset says) or the dataset's own
            ``{"train", "val"?, "test"}`` splits.
        out_dir: Where ``probe.json`` and ``splits.json`` are written (nothing written when None).
        label_fraction: Share of the training split used to fit (0 < f <= 1).
        trials: Repetitions with different label-fraction subsets (seed + t).
        seed: Seed of the splits and of trial 0.
        preset: A preset with a ``[linear]`` table; None: ``ssl-transfer``.
        in_chans: Model input channels (1 for grayscale stems).
        device: "cuda", "cpu", ...; default CUDA when present.
        progress: Progress bars on stderr.
        **overrides: Single ``LinearSettings`` fields (``C=``, ``image_size=``, ``metric=`` ...); None is ignored.

    Returns:
        The record written to ``probe.json``: per-trial ``C``, test metrics and (with ``out_dir``) the name of
        its ``test_scores-trial-<t>.npy`` (per-image test probabilities, which ``compare`` pairs), their
        ``summary`` and ``preset`` (the preset's name, every effective setting, which ones were overridden).

    Raises:
        UnknownPresetError: An unknown preset or one without a ``[linear]`` table.
        PresetError: An override that is not a ``LinearSettings`` field.

    Example:
        >>> linear_probe("moco-v2", read_dataset("chest_xrays/"), out_dir="runs/probe", label_fraction=0.1)
    """
    check_run(data, label_fraction=label_fraction, trials=trials)  # before any model is loaded
    from ..modelfolder.files import read_config
    from ..runtime import Speed

    resolved = resolve("linear", preset, **overrides)
    settings = resolved.settings
    backbone = load_backbone(model, in_chans=in_chans, progress=progress)
    transform = paper_transform(read_config(backbone.folder), settings, in_chans=in_chans)
    parts, index = paper_splits(data, seed=seed, val_fraction=settings.val_fraction)
    speed = Speed.fast(device)
    feats = {k: extract_features(backbone, v, transform, speed=speed, batch_size=settings.batch_size,
                                 progress=progress) for k, v in parts.items()}
    runs = [probe_features(feats, parts, settings, fraction=label_fraction, seed=seed + t, progress=progress)
            for t in range(trials)]
    extra = {"preset": resolved.record(), "normalization": transform.norm}
    return report_trials("linear-probe", model, parts, index, runs, seed=seed, label_fraction=label_fraction,
                         metrics=("accuracy", "mean_per_class_accuracy", "auc"), out_dir=out_dir,
                         filename="probe.json", extra=extra)
