"""Few-shot classification with prototypical networks on frozen features (ssl-transfer ``few_shot.py``).

Transform (preset ``ssl-transfer``): ``Resize((int(1.15 * 224),) * 2)`` (257 x 257, bilinear) + ``CenterCrop(224)`` +
the paper's normalisation rule, no augmentation. Each episode draws ``n_way`` classes (``rng.choice`` without
replacement over the classes with more than ``k_shot`` images), then per class a seeded permutation of its images
whose first ``k_shot`` are the support and the next ``n_query`` (at most) the queries; prototypes are the mean support
features; a query goes to the class with the smallest squared Euclidean distance (``argmax`` of ``-||z - c||^2``).
Episodes share one ``np.random.default_rng(seed)``. Reported: the mean episode accuracy and, as upstream,
``1.96 * np.std(accuracies) / sqrt(episodes)`` (population std, normal quantile; ``interval="t"`` gives the Student t
interval of ``stats.summarize`` instead).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dataclasses import dataclass

from ..errors import DatasetError
from ..progress import bar
from .backbone import load_backbone
from .splits import check_run
from .data import Samples
from .features import extract_features
from .preprocess import ImageSettings, paper_transform
from .presets import resolve
from .results import write_json
from .stats import summarize


@dataclass(frozen=True)
class FewshotSettings(ImageSettings):
    """Settings of few-shot evaluation (defaults: ssl-transfer ``few_shot.py``).

    Attributes:
        n_way: Classes per episode.
        k_shot: Support images per class (upstream ``--n-support``).
        n_query: Query images per class.
        episodes: Episodes (upstream ``--iter-num``).
        interval: "normal" (``1.96 * np.std / sqrt(n)``, upstream) or "t" (Student t on the sample std).
        batch_size: Images per forward pass of the feature extraction.
    """

    resize_ratio: float = 1.15
    resize_mode: str = "square"
    interpolation: str = "bilinear"
    n_way: int = 5
    k_shot: int = 5
    n_query: int = 15
    episodes: int = 600
    interval: str = "normal"
    batch_size: int = 64


def episode_interval(accuracies: list[float], interval: str = "normal") -> dict[str, Any]:
    """Mean accuracy and its 95 % half-width: upstream's ``1.96 * np.std(acc) / sqrt(n)``, or ``stats.summarize``."""
    if interval == "t":
        return summarize(accuracies)
    acc = np.asarray(accuracies, dtype=np.float64)
    mean, half = float(acc.mean()), float(1.96 * acc.std() / np.sqrt(len(acc)))
    return {"n": len(acc), "mean": mean, "std": float(acc.std()), "ci95": half, "ci95_low": mean - half,
            "ci95_high": mean + half}


def episode_accuracy(feats: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, n_way: int, k_shot: int,
                     n_query: int) -> float:
    """Accuracy of one prototypical-network episode."""
    classes = rng.choice(np.unique(labels), size=n_way, replace=False)
    protos, queries = [], []
    for cls in classes:
        chosen = rng.permutation(np.flatnonzero(labels == cls))[: k_shot + n_query]
        protos.append(feats[chosen[:k_shot]].mean(0))
        queries.append(feats[chosen[k_shot:]])
    protos = np.stack(protos)
    query = np.concatenate(queries)
    truth = np.concatenate([np.full(len(q), i) for i, q in enumerate(queries)])
    distances = ((query[:, None, :] - protos[None]) ** 2).sum(-1)
    return float((distances.argmin(1) == truth).mean())


def check_classes(labels: np.ndarray, *, n_way: int, k_shot: int) -> np.ndarray:
    """The images per class, once at least ``n_way`` classes have more than ``k_shot`` (checked before any work).

    Raises:
        DatasetError: Too few such classes; the message gives the counts and the options to lower.
    """
    counts = np.bincount(labels)
    eligible = int((counts >= k_shot + 1).sum())
    if eligible < n_way:
        raise DatasetError(f"few-shot needs {n_way} classes (--n-way) with more than {k_shot} images (--k-shot); "
                           f"the data has {eligible} such of {int((counts > 0).sum())} classes (largest: "
                           f"{int(counts.max(initial=0))} images): lower --n-way or --k-shot")
    return counts


def fewshot_features(feats: np.ndarray, labels: np.ndarray, *, n_way: int = 5, k_shot: int = 5, n_query: int = 15,
                     episodes: int = 600, seed: int = 0, interval: str = "normal",
                     progress: bool = True) -> dict[str, Any]:
    """Episodes over precomputed features; ``{"accuracies": [...], "summary": ...}``."""
    counts = check_classes(labels, n_way=n_way, k_shot=k_shot)
    keep = np.isin(labels, np.flatnonzero(counts >= k_shot + 1))
    feats, labels = feats[keep], labels[keep]
    rng = np.random.default_rng(seed)
    accs = [episode_accuracy(feats, labels, rng, n_way=n_way, k_shot=k_shot, n_query=n_query)
            for _ in bar(range(episodes), progress=progress, desc="episodes")]
    return {"accuracies": accs, "summary": episode_interval(accs, interval)}


def fewshot(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
            seed: int = 0, preset: str | None = None, in_chans: int = 3, device: str | None = None,
            progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """N-way k-shot accuracy of ``model``'s frozen features on ``data`` (binary or multiclass; of a dataset with its
    own splits, the test split), under a preset (default ssl-transfer).

    Args:
        model: A registry name, ``hf-hub:`` reference or model folder (resolved once).
        data: The images (``Samples``) or the dataset's own splits.
        out_dir: Where ``fewshot.json`` is written (nothing written when None).
        seed: Seed of the episodes.
        preset: A preset with a ``[fewshot]`` table; None: ``ssl-transfer``.
        in_chans: Model input channels.
        device: Default CUDA when present.
        progress: Progress bars on stderr.
        **overrides: Single ``FewshotSettings`` fields (``n_way=``, ``k_shot=``, ``image_size=`` ...).

    Returns:
        ``{"protocol": "fewshot", ..., "summary": {"mean", "ci95", ...}, "preset": {...}}``.

    Raises:
        DatasetError: Multilabel data, or fewer than ``n_way`` classes with more than ``k_shot`` images.
        UnknownPresetError / PresetError: A bad preset name or override.

    Example:
        >>> fewshot("moco-v2", read_image_folder("derm/"), n_way=5, k_shot=5)["summary"]["mean"]
    """
    check_run(data)  # before any model is loaded
    from ..modelfolder.files import read_config
    from ..runtime import Speed

    resolved = resolve("fewshot", preset, **overrides)
    s = resolved.settings
    if isinstance(data, dict):
        data = data["test"]  # a dataset with its own splits: episodes come from its held-out images
    if data.task == "multilabel":
        raise DatasetError("few-shot needs one class per image: give a class folder, a one-column CSV or an .npz")
    check_classes(data.class_ids(), n_way=s.n_way, k_shot=s.k_shot)
    backbone = load_backbone(model, in_chans=in_chans, progress=progress)
    transform = paper_transform(read_config(backbone.folder), s, in_chans=in_chans)
    feats = extract_features(backbone, data, transform, speed=Speed.fast(device), batch_size=s.batch_size,
                             progress=progress)
    run = fewshot_features(feats, data.class_ids(), n_way=s.n_way, k_shot=s.k_shot, n_query=s.n_query,
                           episodes=s.episodes, seed=seed, interval=s.interval, progress=progress)
    record = {"protocol": "fewshot", "model": str(model), "n_way": s.n_way, "k_shot": s.k_shot, "n_query": s.n_query,
              "episodes": s.episodes, "seed": seed, "summary": run["summary"], "preset": resolved.record(),
              "normalization": transform.norm, "dataset": data.card}
    if out_dir is not None:
        write_json(Path(out_dir) / "fewshot.json", {**record, "accuracies": run["accuracies"]})
    return record
