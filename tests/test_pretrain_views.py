"""View recipes: each augmentation's parameter distribution by counting (seeded), on the device path (kornia, run
on the CPU here) and the per-sample CPU path (torchvision), which must agree in distribution; the recipes' values."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ssl_zoo.errors import UnknownViewRecipeError
from ssl_zoo.pretraining.augment import crop_transform, recipe_views
from ssl_zoo.pretraining.views import CropSpec, ViewRecipe, make_views, view_recipe

from .pretrain_data import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE = 16
N_DEVICE, N_CPU = 2000, 800
BASE = CropSpec("v", size=SIDE, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.0, jitter_p=0.0, grey=0.0, blur=0.0)


def on_device(spec: CropSpec, image: torch.Tensor, n: int = N_DEVICE, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    return make_views(ViewRecipe("test", (spec,)), image.expand(n, -1, -1, -1), device="cpu")[0]


def on_cpu(spec: CropSpec, image: torch.Tensor, n: int = N_CPU, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    transform = crop_transform(spec)
    return torch.stack([transform(image[0].clone()) for _ in range(n)])


def both(spec: CropSpec, image: torch.Tensor, statistic) -> tuple[torch.Tensor, torch.Tensor]:
    return statistic(on_device(spec, image)), statistic(on_cpu(spec, image))


def assert_rate(hits: torch.Tensor, p: float) -> None:
    """A Bernoulli rate within 4.5 standard errors of ``p``."""
    n, rate = len(hits), hits.float().mean().item()
    assert abs(rate - p) <= 4.5 * math.sqrt(max(p * (1 - p), 1e-4) / n) + 1e-9, (rate, p, n)


def ramp() -> torch.Tensor:
    """Brightness rising left to right, three channels of different scale (so grey and flips show)."""
    x = torch.linspace(0.05, 0.95, SIDE).view(1, 1, 1, SIDE).expand(1, 1, SIDE, SIDE)
    return torch.cat([x, 0.5 * x, 0.2 + 0.0 * x], 1)


@pytest.mark.parametrize("p", [0.5, 0.2])
def test_horizontal_flip_rate(p):
    flipped = lambda v: v[:, 0, :, 0].mean(1) > v[:, 0, :, -1].mean(1)  # noqa: E731
    dev, cpu = both(replace(BASE, hflip=p), ramp(), flipped)
    assert_rate(dev, p)
    assert_rate(cpu, p)


def test_vertical_flip_rate():
    image = ramp().transpose(2, 3)
    flipped = lambda v: v[:, 0, 0].mean(1) > v[:, 0, -1].mean(1)  # noqa: E731
    for hits in both(replace(BASE, vflip=0.5), image, flipped):
        assert_rate(hits, 0.5)


def test_greyscale_rate():
    grey = lambda v: (v[:, 0] - v[:, 1]).abs().amax((1, 2)) < 1e-4  # noqa: E731
    for hits in both(replace(BASE, grey=0.2), ramp(), grey):
        assert_rate(hits, 0.2)


@pytest.mark.parametrize("p", [0.2, 0.0])
def test_solarisation_rate(p):
    image = torch.full((1, 3, SIDE, SIDE), 0.8)
    solarised = lambda v: (v.mean((1, 2, 3)) - 0.2).abs() < 1e-4  # noqa: E731
    for hits in both(replace(BASE, solarize=p), image, solarised):
        assert_rate(hits, p)


def test_blur_rate_and_sigma():
    """Blur p 0.5, sigma ~ U(0.1, 2): a blur with sigma < ~0.27 leaves a 0/1 checkerboard unchanged to 1e-3, so
    the changed share is p * P(sigma > 0.27); kornia's drawn sigmas are counted directly."""
    board = ((torch.arange(SIDE).view(-1, 1) + torch.arange(SIDE)) % 2).float().expand(1, 3, SIDE, SIDE)
    spec = replace(BASE, blur=0.5)
    changed = lambda v: (v - board).abs().amax((1, 2, 3)) > 1e-3  # noqa: E731
    dev, cpu = both(spec, board, changed)
    assert abs(dev.float().mean() - cpu.float().mean()) < 0.07
    assert 0.5 * 0.85 < dev.float().mean() < 0.5 * 0.97
    from ssl_zoo.pretraining.views import _pipeline  # the cached modules hold the last draw's parameters

    torch.manual_seed(3)
    make_views(ViewRecipe("test", (spec,)), board.expand(N_DEVICE, -1, -1, -1), device="cpu")
    blur = _pipeline(spec, "cpu", None)[-1]
    applied = blur._params["batch_prob"]
    assert_rate(applied, 0.5)
    sigma = blur._params["sigma"]
    assert 0.1 <= sigma.min() and sigma.max() <= 2.0
    assert abs(sigma.mean().item() - 1.05) < 0.05 and abs(sigma.std().item() - 1.9 / math.sqrt(12)) < 0.04


def test_brightness_jitter_distribution():
    """Brightness 0.4 at p 1: the factor is U(0.6, 1.4) per sample (torchvision's meaning), on both paths."""
    image = torch.full((1, 3, SIDE, SIDE), 0.5)
    spec = replace(BASE, jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=1.0)
    for factor in both(spec, image, lambda v: v.mean((1, 2, 3)) / 0.5):
        assert 0.6 - 1e-4 <= factor.min() and factor.max() <= 1.4 + 1e-4
        assert abs(factor.mean().item() - 1.0) < 0.02
        assert abs(factor.std().item() - 0.8 / math.sqrt(12)) < 0.02


def test_jitter_probability():
    image = torch.full((1, 3, SIDE, SIDE), 0.5)
    spec = replace(BASE, jitter=(0.4, 0.0, 0.0, 0.0), jitter_p=0.8)
    for hits in both(spec, image, lambda v: (v.mean((1, 2, 3)) - 0.5).abs() > 1e-4):
        assert_rate(hits, 0.8)


def test_crop_area_distribution():
    """Random-resized crop at ratio 1, scale (0.08, 1): the crop's width fraction is sqrt(area), area ~ U(0.08, 1),
    read back from a horizontal ramp's range (the first and last output pixel centres lie (S-1)/S of the crop
    apart); both paths agree with E[sqrt(area)] and with each other."""
    side = 64
    x = torch.linspace(0, 1, side).view(1, 1, 1, side).expand(1, 3, side, side)
    spec = replace(BASE, size=SIDE, scale=(0.08, 1.0))
    width = lambda v: (v[:, 0, :, -1] - v[:, 0, :, 0]).mean(1)  # noqa: E731
    expected = (1 ** 1.5 - 0.08 ** 1.5) / 1.5 / 0.92 * side / (side - 1) * (SIDE - 1) / SIDE  # E[sqrt(U(0.08, 1))]
    dev, cpu = both(spec, x, width)
    for w in (dev, cpu):
        assert abs(w.mean().item() - expected) < 0.02, (w.mean(), expected)
        assert w.min() > math.sqrt(0.08) * (SIDE - 1) / SIDE - 0.03
    assert abs(dev.std().item() - cpu.std().item()) < 0.03


def test_recipes_hold_the_papers_settings():
    byol = view_recipe("byol")
    assert byol.keys == ("view0", "view1")
    assert [c.blur for c in byol.crops] == [1.0, 0.1] and [c.solarize for c in byol.crops] == [0.0, 0.2]
    assert byol.crops[0].jitter == (0.4, 0.4, 0.2, 0.1) and byol.crops[0].kernel == 23
    barlow = view_recipe("barlow-twins")
    assert [(c.blur, c.solarize) for c in barlow.crops] == [(1.0, 0.0), (0.1, 0.2)]
    swav = view_recipe("swav")
    assert swav.keys == ("view0", "view1", *(f"small{i}" for i in range(6)))
    assert [(c.size, c.scale, c.count) for c in swav.crops] == [(224, (0.14, 1.0), 2), (96, (0.05, 0.14), 6)]
    moco = view_recipe("moco-v2").crops[0]
    assert (moco.scale, moco.jitter, moco.jitter_p, moco.grey, moco.blur) == ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8,
                                                                              0.2, 0.5)
    simclr = view_recipe("simclr").crops[0]
    assert (simclr.scale, simclr.jitter) == ((0.08, 1.0), (0.8, 0.8, 0.8, 0.2))
    assert [c.size for c in view_recipe("swav", size=112).crops] == [112, 48]


def test_unknown_recipe_names_the_known_ones():
    from ssl_zoo.pretraining.base import MethodSettings, build_method
    from ssl_zoo.pretraining.views import recipe_for

    with pytest.raises(UnknownViewRecipeError, match="byol"):
        view_recipe("byl")
    simclr = build_method("simclr", MethodSettings(arch="resnet18", views="wolf-simclr"))
    with pytest.raises(UnknownViewRecipeError, match="wolf-moco"):  # no fall-back to other views
        recipe_for(simclr)


def test_multi_crop_shapes_and_asymmetry_on_both_paths():
    """SwAV gives 2 large + 6 small crops; BYOL's first view is always blurred, its second sometimes solarised."""
    images = torch.rand(4, 3, 32, 32)
    swav = view_recipe("swav", size=32)
    views = make_views(swav, images, device="cpu")
    assert [tuple(v.shape) for v in views] == [(4, 3, 32, 32)] * 2 + [(4, 3, 16, 16)] * 6
    cpu = recipe_views(swav)(images[0], {})
    assert list(cpu) == list(swav.keys) and cpu["small5"].shape == (3, 16, 16)
    assert all(0 <= v.min() and v.max() <= 1 for v in views)


@pytest.mark.parametrize("small", [0, 1, 2])
def test_swav_draws_only_the_small_crops_it_uses(small, monkeypatch):
    """small_crops below the recipe's six: the workers and the device draw 2 + small crops, and the loss uses them all."""
    from ssl_zoo.pretraining.base import MethodSettings, build_method
    from ssl_zoo.pretraining.run import worker_views
    from ssl_zoo.pretraining.views import recipe_for

    torch.manual_seed(0)
    swav = build_method("swav", MethodSettings(arch="resnet18", image_size=32,
                                               options={"prototypes": 8, "small_crops": small}))
    images = torch.rand(4, 3, 32, 32)
    device = make_views(recipe_for(swav), images, device="cpu")
    cpu = worker_views(swav)(images[0], {})
    assert len(device) == len(cpu) == 2 + small
    assert [v.shape[-1] for v in device] == [32, 32] + [16] * small
    assert list(cpu)[:2] == ["view0", "view1"] and all(cpu[k].shape[-1] == 16 for k in list(cpu)[2:])
    batch = dict(zip(recipe_for(swav).keys, device, strict=True))
    assert torch.isfinite(swav(batch, 0.0)[0])
    embedded = []
    monkeypatch.setattr(swav, "embed", lambda x: embedded.append(x.shape[-1]) or torch.randn(len(x), 128))
    swav(batch, 0.0)
    assert embedded == [32, 32] + [16] * small  # every drawn crop reaches the loss, and nothing else


def test_swav_small_crops_keep_the_presets_crop_and_refuse_bad_counts():
    from ssl_zoo.errors import PresetError
    from ssl_zoo.pretraining.base import MethodSettings, build_method
    from ssl_zoo.pretraining.views import recipe_for

    wolf = build_method("swav", MethodSettings(arch="resnet18", image_size=224, views="wolf-swav",
                                               options={"prototypes": 8, "small_crops": 3}))
    small = [c for c in recipe_for(wolf).crops if c.key == "small"]
    assert [(c.count, c.scale) for c in small] == [(3, (0.10, 0.33))]
    with pytest.raises(PresetError, match="small_crops=6"):
        build_method("swav", MethodSettings(arch="resnet18", options={"small_crops": -1}))
    with pytest.raises(UnknownViewRecipeError, match="no 'small' crops"):
        build_method("swav", MethodSettings(arch="resnet18", views="simclr", options={"small_crops": 2}))


def test_device_views_for_a_method_with_its_own_views_is_refused() -> None:
    from ssl_zoo.errors import TrainingDataError
    from ssl_zoo.pretraining.base import MethodSettings, build_method
    from ssl_zoo.pretraining.run import device_recipe

    method = build_method("dira", MethodSettings(arch="resnet18", image_size=32))
    with pytest.raises(TrainingDataError, match="--views auto or workers"):
        device_recipe(method, "device", "cpu")
    assert device_recipe(method, "auto", "cuda") is None  # auto: the workers draw them, as asked
