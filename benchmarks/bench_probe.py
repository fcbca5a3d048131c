"""The linear probe's C search against the rest of a probe: 10,000 images x 2,048 features on CPU.

The ssl-transfer procedure fits 45 logistic regressions (C = 1 / wd, wd in logspace(-6, 5, 45)) on the training
features and scores each on validation, then refits once. Measured side by side on the same synthetic features
(10 classes, 8,000 train / 2,000 val, float32, a learnable but noisy problem):

- ``search warm``: the library's ``probe.search_C`` with ``warm_start=True`` (the preset; each C starts from the
  previous solution), max_iter 100 as upstream;
- ``search cold``: the same grid with ``warm_start=False``;
- ``search warm, C ascending``: warm-started along the regularisation path from strong to weak (C 1e-5 .. 1e6), the
  order in which each solution is a good start for the next (not the preset: upstream's order is C descending);
- ``features``: ResNet-50 forward passes on CPU for a few batches at 224 px, extrapolated to 10,000 images (the
  frozen-feature extraction every probe pays once).

Target: the warm search costs less than the feature extraction it follows (ratio search / features < 1).
"""

from __future__ import annotations

import time

import numpy as np
from _common import machine_line, make_parser, print_table

TARGET = 1.0


def synthetic_features(n: int, dim: int, classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(0, 1, (classes, dim)).astype(np.float32) * 0.15
    feats = np.maximum(centres[labels] + rng.normal(0, 1, (n, dim)).astype(np.float32), 0)  # ReLU-pooled, raw
    return feats, labels


def time_search(train, val, warm: bool, ascending: bool = False) -> tuple[float, float]:
    from ssl_zoo.evaluation.presets import resolve
    from ssl_zoo.evaluation.probe import Probe, c_grid, search_C

    settings = resolve("linear", warm_start=warm).settings
    grid = c_grid(settings)[::-1] if ascending else c_grid(settings)
    start = time.perf_counter()
    C, _ = search_C(Probe("multiclass", 10, settings), train, val, grid, "accuracy", progress=False)
    return time.perf_counter() - start, C


def time_features(images: int, batch: int) -> float:
    """Seconds per image of a ResNet-50 forward pass at 224 px on CPU (after one warm-up batch)."""
    import timm
    import torch

    net = timm.create_model("resnet50", num_classes=0).eval()
    x = torch.randn(batch, 3, 224, 224)
    with torch.inference_mode():
        net(x)
        start = time.perf_counter()
        for _ in range(max(1, images // batch)):
            net(x)
    return (time.perf_counter() - start) / (max(1, images // batch) * batch)


def main() -> None:
    args = make_parser(__doc__.splitlines()[0], default_repeat=1).parse_args()
    n, dim = (2_000, 512) if args.quick else (10_000, 2_048)
    feats, labels = synthetic_features(n, dim, 10)
    split = int(0.8 * n)
    train, val = (feats[:split], labels[:split]), (feats[split:], labels[split:])
    warm, c_warm = time_search(train, val, warm=True)
    cold, c_cold = time_search(train, val, warm=False)
    path, c_path = time_search(train, val, warm=True, ascending=True)
    per_image = time_features(16 if args.quick else 32, 8)
    extraction = per_image * n
    print(machine_line())
    print_table(("STEP", "SECONDS", "NOTE"),
                [("search warm (45 C)", f"{warm:.1f}", f"chosen C {c_warm:.3g}"),
                 ("search cold (45 C)", f"{cold:.1f}", f"chosen C {c_cold:.3g}"),
                 ("search warm, C ascending", f"{path:.1f}", f"chosen C {c_path:.3g}"),
                 (f"features ({n} images, ResNet-50)", f"{extraction:.1f}", f"{1 / per_image:.1f} images/s")])
    ratio = warm / extraction
    print(f"warm / cold search: {warm / cold:.2f}x; ascending warm / cold: {path / cold:.2f}x; "
          f"warm search / feature extraction: {ratio:.2f}")
    if ratio >= TARGET:
        print(f"TARGET MISSED: the C search should cost less than the feature extraction (ratio < {TARGET})")


if __name__ == "__main__":
    main()
