"""Invariance of features to image transforms and across views (SSL_medicalimaging ``invariances*.py``).

Upstream, step by step (``invariances.py``): seed ``np.random`` with 0; the feature mean ``mu`` and covariance
``S`` come from the dataset's clean images (``Resize(256)`` + ``CenterCrop(224)``): all of them when there are
fewer than 1000, else ``max(1000, 10 %)`` indices drawn *with replacement*; ``S += 1e-6 I``; ``L`` is the
Cholesky factor of ``S^-1``. Then ``num_images`` (100) indices are drawn with replacement and every image is
compared with each of its ``k`` transformed copies (``invariance_transforms``): Mahalanobis distance
``sqrt((f - g)^T S^-1 (f - g))`` and cosine similarity of ``(mu - f) L`` and ``(mu - g) L``. Reported per family:
the nan-mean over images, then the mean over copies. ``invariances_multiview.py`` scores pairs of views of the
same patient/study (from ``Samples.groups``) the same way, at ``Resize(224, bicubic)`` + ``CenterCrop(224)``.
Computed in float64 (upstream: a float32 Cholesky factor).

Which images (read in ``jonahanton/SSL_medicalimaging@77fceef``): ``get_train_valid_test_dset`` builds
``ConcatDataset([dset(train=True), dset(train=False)])`` and ``invariances.py`` uses it for both the clean
(covariance) set and the scored set; ``invariances_multiview.py`` does the same. Its dataset classes have a train
and a test part only (the val split of ``linear.py`` is carved from train), so the pool is every image the class
reads, never the test split alone: a dataset card or ``.npz`` is used with all of its splits
(``analysis_input.dataset_pool``), and the ``splits`` setting narrows it. One card differs: upstream's CheXpert
class reads ``train.csv`` only (the official ``valid.csv``, ssl_zoo's test split, is never read), so upstream's
pool there is ``splits=("train", "val")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError
from .analysis_input import (analysis_normalization, dataset_pool, normalize_unit, resize_crop, rgb_image,
                             split_counts, to_unit)
from ..progress import bar
from .backbone import load_backbone
from .splits import check_run
from .data import Samples
from .invariance_stats import Whitening, covariance_draw, pair_scores, whitening
from .invariance_transforms import FAMILIES, apply, default_k, sweep
from .plots import draw_or_warn, invariance_plot
from .results import write_json
from .stats import summarize


@dataclass(frozen=True)
class DrawSettings:
    """What both invariance protocols share: which images are scored and how the feature statistics are drawn.

    Attributes:
        num_images: Images drawn (with replacement) and scored.
        covariance_min: At least this many images for the covariance (all when the set is smaller).
        covariance_share: ... or this share of the set, when larger.
        eps: Ridge added to the covariance's diagonal.
        normalization: A rule of ``preprocess.NORMALIZATIONS`` ("paper", "entry", ...).
        seed: ``np.random.seed`` of the draws.
        splits: Official splits the images (and the covariance, unless given separately) are drawn from; empty:
            every image, as upstream (``analysis_input.dataset_pool``).
    """

    num_images: int = 100
    covariance_min: int = 1000
    covariance_share: float = 0.1
    eps: float = 1e-6
    normalization: str = "paper"
    seed: int = 0
    splits: tuple[str, ...] = ()


@dataclass(frozen=True)
class InvarianceSettings(DrawSettings):
    """The settings of the synthetic-transform invariance (preset table ``[invariance]``), beside ``DrawSettings``.

    Attributes:
        transforms: The families scored (default all 18).
        k: Copies per family; None: upstream's (256; 2 for on/off families; 7 for posterize).
        resize: Shorter side before the centre crop.
        crop_size: Centre crop.
        interpolation: Resize interpolation of the clean images.
    """

    transforms: tuple[str, ...] = FAMILIES
    k: int | None = None
    resize: int = 256
    crop_size: int = 224
    interpolation: str = "bilinear"


@dataclass(frozen=True)
class MultiviewSettings(DrawSettings):
    """The settings of the multi-view invariance (preset table ``[multiview]``), beside ``DrawSettings``.

    Attributes:
        image_size: Resize of the shorter side and the centre crop of each view (upstream resizes and crops alike).
        interpolation: Resize interpolation.
    """

    image_size: int = 224
    interpolation: str = "bicubic"


class Features:
    """The backbone and the input recipe: PIL images -> pooled features (float64 rows)."""

    def __init__(self, model: str | Path, rule: str, *, in_chans: int, device: str | None, batch_size: int,
                 progress: bool) -> None:
        from ..runtime import pick_device

        self.device = pick_device(device)
        backbone = load_backbone(model, in_chans=in_chans, progress=progress)
        self.net = backbone.model.eval().to(self.device)
        self.norm, self.batch_size = analysis_normalization(backbone.folder, rule, in_chans), batch_size

    def __call__(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        tensors = [normalize_unit(to_unit(im), self.norm) for im in images]
        out = []
        with torch.inference_mode():
            for i in range(0, len(tensors), self.batch_size):
                batch = torch.stack(tensors[i:i + self.batch_size]).to(self.device)
                out.append(self.net(batch).flatten(1).double().cpu().numpy())
        return np.concatenate(out)


def clean_features(features: Features, data: Samples, indices: Sequence[int], resize: int, crop: int,
                   interpolation: str, progress: bool) -> np.ndarray:
    """Features of ``data``'s images at ``indices`` after ``Resize(resize)`` + ``CenterCrop(crop)``, in chunks."""
    chunks = [indices[i:i + 256] for i in range(0, len(indices), 256)]
    return np.concatenate([features([resize_crop(rgb_image(data.load(int(i))), resize, crop, interpolation)
                                     for i in chunk]) for chunk in bar(chunks, progress=progress,
                                                                       desc="clean features")])


def family_scores(features: Features, images: Sequence[Any], clean: np.ndarray, w: Whitening, family: str,
                  s: InvarianceSettings) -> dict[str, float]:
    """Mahalanobis distance and cosine similarity of one family: nan-mean over images, mean over copies (as
    upstream), and the 95 % t-interval half-width over the images' own means (``*_ci95``, for the figure)."""
    params = sweep(family, s.k or default_k(family), s.resize, s.crop_size)
    distances, cosines = np.zeros((len(images), len(params))), np.zeros((len(images), len(params)))
    for i, image in enumerate(images):
        moved = features([apply(family, image, p, s.resize, s.crop_size, s.interpolation) for p in params])
        distances[i], cosines[i] = pair_scores(np.repeat(clean[i:i + 1], len(params), 0), moved, w)
    return {"mahalanobis": float(np.nanmean(distances, 0).mean()),
            "cosine_similarity": float(np.nanmean(cosines, 0).mean()), "copies": len(params),
            # not upstream's: the spread over images, so the figure can show how sure each bar is
            "mahalanobis_ci95": summarize(np.nanmean(distances, 1))["ci95"],
            "cosine_similarity_ci95": summarize(np.nanmean(cosines, 1))["ci95"]}


def invariance(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
               covariance_data: Samples | dict[str, Samples] | None = None, preset: str | None = None,
               in_chans: int = 3, device: str | None = None, batch_size: int = 64, progress: bool = True,
               **overrides: Any) -> dict[str, Any]:
    """Per-family invariance of ``model``'s features on images of ``data``.

    Args:
        model: A registry name or a model folder.
        data: The dataset: ``Samples`` or a dict of splits. Images and covariance images are drawn from every
            image of every split (or the ``splits`` setting's), as upstream (module docstring).
        out_dir: Where ``invariance.json`` goes (nothing written when None).
        covariance_data: A separate set for the feature mean and covariance, used whole (default: the pool).
        preset: The preset (default "ssl-transfer"); ``overrides`` change single ``InvarianceSettings`` fields.
        in_chans: Model input channels.
        device: "cuda", "cpu", ...
        batch_size: Images per forward pass.
        progress: Progress bars on stderr.

    Returns:
        ``{"model", "preset", "normalization", "pool" ({"images", "splits": images per split}), "drawn_splits",
        "images" (indices in ``data``), "covariance_images", "warnings", "transforms": {family: {"mahalanobis",
        "cosine_similarity", "copies"}}}``.

    Raises:
        DatasetError: An empty dataset or fewer than two covariance images.
        UnknownPresetError / PresetError / SettingError: An unknown preset or setting (a family or split name;
            splits chosen for data without official splits).

    Example:
        >>> invariance("moco-v2", read_dataset("retina.csv"), transforms=("rotation", "h_flip"))
    """
    check_run(data)  # before any model is loaded
    from .presets import resolve

    resolved = resolve("invariance", preset, **overrides)
    s = resolved.settings
    check_families(s.transforms)
    pool, where = dataset_pool(data, s.splits)
    if not len(pool):
        raise DatasetError("the invariance needs images; the dataset is empty")
    features = Features(model, s.normalization, in_chans=in_chans, device=device, batch_size=batch_size,
                        progress=progress)
    rng = np.random.RandomState(s.seed)
    w = fit_whitening(features, covariance_pool(covariance_data, pool), rng, s, s.resize, s.crop_size, progress)
    chosen = rng.choice(np.arange(len(pool)), s.num_images)
    images = [rgb_image(pool.load(int(i))) for i in chosen]
    clean = features([resize_crop(im, s.resize, s.crop_size, s.interpolation) for im in images])
    scores = {f: family_scores(features, images, clean, w, f, s)
              for f in bar(s.transforms, progress=progress, desc="transform families")}
    record = {"model": str(model), "preset": resolved.record(), "normalization": features.norm,
              "dataset": pool.card, **pool_record(pool, chosen), "images": [int(where[i]) for i in chosen],
              "covariance_images": w.images, "warnings": w.warnings, "transforms": scores}
    if out_dir is not None:
        title = f"{Path(str(model)).name}: invariance over {s.num_images} images ({w.images} for the covariance)" + (
            "\nwarning: singular covariance, values not comparable (see invariance.json)" if w.warnings else "")
        write_json(Path(out_dir) / "invariance.json", record)
        figures = draw_or_warn(lambda: invariance_plot(scores, Path(out_dir) / "invariance.png", title=title),
                               "invariance figure")
        record["figures"] = [str(f) for f in figures]
        write_json(Path(out_dir) / "invariance.json", record)
    return record


def covariance_pool(covariance_data: Samples | dict[str, Samples] | None, pool: Samples) -> Samples:
    """The covariance images' pool: a separate set whole (a dict of splits concatenated), else the scored pool."""
    return pool if covariance_data is None else dataset_pool(covariance_data)[0]


def pool_record(pool: Samples, chosen: Sequence[int]) -> dict[str, Any]:
    """What the record says about the draw: the pool's size and images per split, the drawn images' splits."""
    return {"pool": {"images": len(pool), "splits": split_counts(pool)},
            "drawn_splits": split_counts(pool.subset(np.asarray(chosen)))}


def fit_whitening(features: Features, data: Samples, rng: np.random.RandomState, s: Any, resize: int, crop: int,
                  progress: bool) -> Whitening:
    """The ``Whitening`` of upstream's covariance draw from ``data``."""
    drawn = covariance_draw(len(data), rng, s.covariance_min, s.covariance_share)
    return whitening(clean_features(features, data, drawn, resize, crop, s.interpolation, progress), s.eps)


def check_families(families: Sequence[str]) -> None:
    """Refuse unknown family names, listing the valid ones."""
    from ..errors import SettingError

    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        raise SettingError(f"unknown transform famil{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
                           f"valid: {', '.join(FAMILIES)}")


def view_pairs(groups: np.ndarray | None) -> list[tuple[int, int]]:
    """The first two images (dataset order) of every group with at least two.

    Raises:
        DatasetError: No groups, or no group with two images.
    """
    if groups is None:
        raise DatasetError("multi-view invariance needs a patient/study column: give the CSV a 'group' column "
                           "(or use a dataset card that has one)")
    members: dict[Any, list[int]] = {}
    for index, group in enumerate(groups.tolist()):
        members.setdefault(group, []).append(index)
    pairs = [(m[0], m[1]) for m in members.values() if len(m) >= 2]
    if not pairs:
        raise DatasetError("no patient/study group has two images: multi-view invariance needs pairs of views")
    return pairs


def multiview_invariance(model: str | Path, data: Samples | dict[str, Samples], *,
                         out_dir: str | Path | None = None,
                         covariance_data: Samples | dict[str, Samples] | None = None, preset: str | None = None,
                         in_chans: int = 3, device: str | None = None, batch_size: int = 64, progress: bool = True,
                         **overrides: Any) -> dict[str, Any]:
    """Invariance across views of the same patient/study (``invariances_multiview.py``).

    Args:
        model: A registry name or a model folder.
        data: ``Samples`` with ``groups`` (the CSV's ``group`` column), or a dict of splits; drawn from as
            ``invariance`` draws.
        out_dir, covariance_data, preset, in_chans, device, batch_size, progress: As ``invariance``;
            ``overrides`` change single ``MultiviewSettings`` fields.

    Returns:
        ``{"model", "preset", "normalization", "pool", "drawn_splits", "pairs", "covariance_images", "warnings",
        "multiview": {"mahalanobis", "cosine_similarity"}}``.

    Raises:
        DatasetError: A path given as data, no groups or no pairs.
    """
    check_run(data)  # before any model is loaded
    from .presets import resolve

    resolved = resolve("multiview", preset, **overrides)
    s = resolved.settings
    pool, where = dataset_pool(data, s.splits)
    pairs = view_pairs(pool.groups)
    features = Features(model, s.normalization, in_chans=in_chans, device=device, batch_size=batch_size,
                        progress=progress)
    rng = np.random.RandomState(s.seed)
    w = fit_whitening(features, covariance_pool(covariance_data, pool), rng, s, s.image_size, s.image_size, progress)
    chosen = [pairs[i] for i in rng.choice(len(pairs), s.num_images)]
    views = [clean_features(features, pool, [p[side] for p in chosen], s.image_size, s.image_size,
                            s.interpolation, progress) for side in (0, 1)]
    distance, cosine = pair_scores(views[0], views[1], w)
    record = {"model": str(model), "preset": resolved.record(), "normalization": features.norm,
              "dataset": pool.card, **pool_record(pool, [p[0] for p in chosen]),
              "pairs": [[int(where[i]) for i in p] for p in chosen], "covariance_images": w.images,
              "warnings": w.warnings,
              "multiview": {"mahalanobis": float(np.nanmean(distance)),
                            "cosine_similarity": float(np.nanmean(cosine))}}
    if out_dir is not None:
        write_json(Path(out_dir) / "multiview.json", record)
    return record
