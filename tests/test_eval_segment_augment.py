"""The segmentation protocol's paired augmentation (BenchmarkTransferLearning V1 / albumentations 0.4.3): image and
mask share the geometry, the OneOf probabilities hold, masks keep their class ids, fields follow upstream's formulas."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from ssl_zoo.evaluation import segment_augment as aug
from ssl_zoo.evaluation.segment_masks import MaskDataset

CLASS_VALUES = np.array([0.0, 0.13, 0.41, 0.97])  # image value of class id i: no mix of two equals a third


def _scene(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, H, W) mask of class ids 0..3 (disc, bar, square) and a 3-channel image drawn from it."""
    y, x = np.mgrid[:size, :size]
    ids = np.zeros((size, size))
    ids[(x - size * 0.45) ** 2 + (y - size * 0.5) ** 2 < (size * 0.3) ** 2] = 1
    ids[size // 3:size // 3 + size // 8, :] = 2
    ids[size // 8:size // 3, size * 2 // 3:size - 4] = 3
    mask = torch.tensor(ids, dtype=torch.float32)[None]
    image = torch.tensor(CLASS_VALUES[ids.astype(int)], dtype=torch.float32)[None].repeat(3, 1, 1)
    return image, mask


@pytest.mark.parametrize("kind", aug.DISTORTIONS)
def test_distortion_moves_image_and_mask_together(kind):
    image, mask = _scene()
    for seed in range(3):
        plan = aug.Plan(distortion=kind, field=aug.FIELDS[kind](64, 64, np.random.default_rng(seed)))
        moved, moved_mask = aug.apply_plan(image, mask, plan)
        assert not torch.equal(moved_mask, mask)  # the geometry changed
        # where all four bilinear neighbours share a class the image shows that class's value exactly,
        # and the nearest-neighbour mask must hold the same class there
        values = moved[0].numpy()
        exact = np.abs(values[..., None] - CLASS_VALUES).min(-1) < 1e-5
        ids = np.abs(values[..., None] - CLASS_VALUES).argmin(-1)
        assert exact.mean() > 0.6
        assert np.array_equal(ids[exact], moved_mask[0].numpy()[exact].astype(int))
        assert torch.equal(moved[0], moved[1])  # every channel moved alike


def test_oneof_probabilities_by_counting_over_seeds():
    n = 3000
    plans = [aug.draw_plan(32, np.random.default_rng(seed)) for seed in range(n)]
    share = lambda pred: sum(map(pred, plans)) / n  # noqa: E731
    tolerance = lambda p: 4.5 * np.sqrt(p * (1 - p) / n)  # noqa: E731
    expected = {"elastic": 0.1, "grid": 0.1, "optical": 0.1}  # OneOf p=0.3, three members of p=0.5 each
    for kind, p in expected.items():
        assert abs(share(lambda pl: pl.distortion == kind) - p) < tolerance(p), kind
    for colour in aug.COLOURS:
        assert abs(share(lambda pl: pl.colour == colour) - 0.15) < tolerance(0.15), colour
    assert abs(share(lambda pl: pl.crop is not None) - 0.25) < tolerance(0.25)
    sides = [pl.crop[2] for pl in plans if pl.crop]
    assert min(sides) >= int(32 * 156 / 224) and max(sides) <= 32


def test_masks_stay_integer_class_ids_and_the_draw_is_seeded():
    image, mask = _scene(32)
    for seed in range(40):
        out, out_mask = aug.augment_pair(image, mask, np.random.default_rng(seed))
        assert out.shape == image.shape and out_mask.shape == mask.shape and out_mask.dtype == torch.float32
        assert set(torch.unique(out_mask).tolist()) <= {0.0, 1.0, 2.0, 3.0}
        again = aug.augment_pair(image, mask, np.random.default_rng(seed))
        assert torch.equal(out, again[0]) and torch.equal(out_mask, again[1])
        planned = aug.apply_plan(image, mask, aug.draw_plan(32, np.random.default_rng(seed)))
        assert torch.equal(out_mask, planned[1])


def test_optical_field_is_opencvs_undistort_map_by_hand():
    k = np.random.default_rng(7).uniform(-2, 2)  # the field's first draw
    field = aug.optical_field(32, 32, np.random.default_rng(7))
    # initUndistortRectifyMap, new camera = default (principal point (W-1)/2), f = 32, centre 16, k1 = k2 = k
    x = y = (0 - 15.5) / 32
    r2 = x * x + y * y
    corner = 32 * x * (1 + k * r2 + k * r2 ** 2) + 16
    assert field[0, 0] == pytest.approx([corner, corner])
    centre = 16 + 0.5 * (1 + k / 2048 + k / 2048 ** 2)  # u = v = 16: x = y = 0.5 / 32, r^2 = 1 / 2048
    assert field[16, 16] == pytest.approx([centre, centre])


def test_grid_axis_follows_albumentations_043_cells_by_hand():
    stretches = np.array([1.2, 0.8, 1.0, 1.3, 0.7, 1.1])
    axis = aug.grid_axis(224, stretches)  # step 44: cells start at 0, 44, 88, 132, 176 and a last one at 220
    assert axis[:44] == pytest.approx(np.linspace(0, 52.8, 44))
    assert axis[44:88] == pytest.approx(np.linspace(52.8, 88.0, 44))
    assert axis[132:176] == pytest.approx(np.linspace(132.0, 189.2, 44))
    assert axis[176:220] == pytest.approx(np.linspace(189.2, 220.0, 44))
    assert axis[220:] == pytest.approx(np.linspace(220.0, 224.0, 4))  # the last cell ends at the side


def test_each_dataloader_worker_draws_from_its_own_seeded_generator(monkeypatch):
    dataset = MaskDataset(None, None, augment_seed=5)
    main = dataset.generator().random()
    assert main == np.random.default_rng(5).random()
    for worker_seed in (101, 102):
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda s=worker_seed: types.SimpleNamespace(seed=s))
        assert dataset.generator().random() == np.random.default_rng([5, worker_seed]).random()
