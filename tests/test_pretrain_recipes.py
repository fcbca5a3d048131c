"""The recipes around the losses: optimisers against their update rules by hand, schedules at their key steps,
the preset records, SwAV's queue and prototype freezing, Chaitanya's partition batches, MAGICAL's proxy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ssl_zoo.errors import PresetError, TrainingDataError, UnknownPresetError
from ssl_zoo.pretraining.base import METHOD_MODULES, MethodSettings, build_method
from ssl_zoo.pretraining.optim import Schedule, ema_momentum, make_optimizer, recipe_spec, split_groups
from ssl_zoo.pretraining.recipes import Recipe, list_presets, resolve

from .pretrain_data import SIZE
from .pretrain_data import one_thread  # noqa: F401 (an autouse-by-mark fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def _toy() -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """A 3x2 linear layer with fixed weights and the gradients of one hand-made step."""
    layer = nn.Linear(2, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0], [3.0, 1.0]]))
        layer.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    grad_w = torch.tensor([[0.2, 0.1], [-0.4, 0.3], [0.0, 0.5]])
    grad_b = torch.tensor([0.05, -0.1, 0.2])
    layer.weight.grad, layer.bias.grad = grad_w.clone(), grad_b.clone()
    return layer, grad_w, grad_b


def _step(recipe: Recipe, batch: int = 256) -> nn.Linear:
    layer, _, _ = _toy()
    w, b = layer.weight.detach().clone(), layer.bias.detach().clone()
    optimizer = make_optimizer(recipe_spec(split_groups(list(layer.named_parameters()), recipe), recipe, batch))
    optimizer.step()
    layer.before = (w, b)
    return layer


def test_lars_step_by_hand():
    recipe = Recipe(optimizer="lars", lr=0.2, reference_batch=256, weight_decay=0.01, exclude_norm_bias=True,
                    bias_lr_scale=0.5)
    layer = _step(recipe, batch=512)  # peak lr 0.4 at batch 512
    (w, b), (_, g_w, g_b) = layer.before, _toy()
    lr, eta, wd = 0.4, 1e-3, 0.01
    trust = eta * w.norm() / (g_w.norm() + wd * w.norm())  # timm's LARS trust ratio
    expected_w = w - lr * trust * (g_w + wd * w)  # first step: the momentum buffer is the update itself
    expected_b = b - lr * 0.5 * g_b  # biases: no weight decay, no adaptation, their own lr scale
    assert torch.allclose(layer.weight, expected_w, atol=1e-7) and torch.allclose(layer.bias, expected_b, atol=1e-7)


def test_lamb_step_by_hand():
    recipe = Recipe(optimizer="lamb", lr=2e-4, reference_batch=256, betas=(0.9, 0.95), weight_decay=0.04,
                    exclude_norm_bias=True)
    layer = _step(recipe, batch=1024)  # peak lr 8e-4
    (w, b), (_, g_w, g_b) = layer.before, _toy()
    lr, eps = 8e-4, 1e-6
    # first step: bias-corrected moments are g and g², so the Adam direction is g / (|g| + eps)
    adam_w, adam_b = g_w / (g_w.abs() + eps), g_b / (g_b.abs() + eps)
    update_w = adam_w + 0.04 * w
    expected_w = w - lr * (w.norm() / update_w.norm()) * update_w
    expected_b = b - lr * adam_b  # no decay, hence no trust ratio
    assert torch.allclose(layer.weight, expected_w, atol=1e-7) and torch.allclose(layer.bias, expected_b, atol=1e-7)


def test_sgd_and_adam_steps_by_hand():
    sgd = _step(Recipe(optimizer="sgd", lr=0.03, weight_decay=1e-4))
    (w, b), (_, g_w, g_b) = sgd.before, _toy()
    assert torch.allclose(sgd.weight, w - 0.03 * (g_w + 1e-4 * w)) and torch.allclose(sgd.bias, b - 0.03 * (g_b + 1e-4 * b))
    adam = _step(Recipe(optimizer="adam", lr=1e-3, betas=(0.9, 0.99)))
    assert torch.allclose(adam.weight, w - 1e-3 * g_w / (g_w.abs() + 1e-8), atol=1e-7)


def test_schedules_at_their_key_steps():
    spark = Schedule.of(resolve("spark").recipe, epochs=1600, steps_per_epoch=10)
    assert spark.lr_factor(0) == pytest.approx(0.005)  # warm-up starts at 0.5 % of the peak
    assert spark.lr_factor(200) == pytest.approx(0.005 + 0.995 * 0.5)  # half-way through the 40 warm-up epochs
    assert spark.lr_factor(400) == pytest.approx(1.0)
    assert spark.lr_factor(400 + (16000 - 400) // 2) == pytest.approx(0.001 + 0.999 * 0.5)
    assert spark.lr_factor(16000) == pytest.approx(0.001)  # cosine to 0.1 %
    assert spark.weight_decay(0, 0.04, 0.2) == pytest.approx(0.04)
    assert spark.weight_decay(15999, 0.04, 0.2) == pytest.approx(0.2)
    assert spark.weight_decay(8000, 0.04, 0.2) == pytest.approx(0.12, abs=1e-4)
    moco = Schedule.of(resolve("moco-v2").recipe, epochs=200, steps_per_epoch=10)
    assert moco.lr_factor(0) == moco.lr_factor(9) == 1.0  # per epoch: constant within the first epoch
    assert moco.lr_factor(1000) == pytest.approx(0.5 * (1 + math.cos(math.pi * 100 / 200)))
    byol = Schedule.of(resolve("byol").recipe, epochs=100, steps_per_epoch=10)
    assert byol.lr_factor(0) == 0.0 and byol.lr_factor(50) == pytest.approx(0.5) and byol.lr_factor(100) == 1.0
    assert Schedule.of(resolve("chaitanya-global").recipe, 5, 3).lr_factor(7) == 1.0
    assert ema_momentum(0.996, 0.0) == pytest.approx(0.996) and ema_momentum(0.996, 1.0) == pytest.approx(1.0)
    assert ema_momentum(0.996, 0.5) == pytest.approx(0.998)


def test_schedule_applies_lr_and_annealed_weight_decay_to_groups():
    recipe = resolve("spark").recipe
    layer, _, _ = _toy()
    optimizer = make_optimizer(recipe_spec(split_groups(list(layer.named_parameters()), recipe), recipe, 256))
    schedule = Schedule.of(recipe, epochs=2, steps_per_epoch=5)
    schedule.apply([optimizer], 9)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == pytest.approx(0.2) and plain["weight_decay"] == 0.0
    assert decayed["lr"] == pytest.approx(2e-4 * schedule.lr_factor(9))


def test_every_method_has_a_paper_recipe_and_presets_are_listed():
    for method in METHOD_MODULES:
        resolved = resolve(method)
        assert resolved.sources and resolved.recipe.epochs > 0, method
        if method in ("byol", "barlow-twins"):
            continue  # their 4096/8192-wide heads are slow to build; their options are checked elsewhere
        small = {k: v for k, v in {"queue": 16, "prototypes": 8}.items() if k in resolved.options}
        build_method(method, MethodSettings(arch="resnet18", image_size=SIZE, options={**resolved.options, **small}))
    names = {p["preset"]: p for p in list_presets()}
    assert set(names) == {"paper", "wolf-lidc", "magical-cxr", "magical-medmnist", "dira-dir", "dira-dira"}
    assert names["wolf-lidc"]["methods"] == ["moco-v2", "byol", "swav"]
    assert all(p["sources"] for p in names.values())


def test_preset_records():
    moco = resolve("moco-v2", "wolf-lidc")
    assert (moco.recipe.lr, moco.options["tau"], moco.recipe.batch_size, moco.recipe.mean) == (
        0.015, 0.07, 128, (0.1806,) * 3)
    assert moco.recipe.views == "wolf-moco" and moco.recipe.peak_lr(256) == 0.015  # no scaling in Wolf's code
    byol = resolve("byol", "wolf-lidc").recipe
    assert (byol.optimizer, byol.lr, byol.warmup_epochs) == ("adam", 1e-3, 10)
    assert resolve("swav", "wolf-lidc").options["prototypes"] == 500
    cxr, med = resolve("magical", "magical-cxr"), resolve("magical", "magical-medmnist")
    assert cxr.options["reconstruction"] == "l1" and med.options["reconstruction"] == "mse"
    assert cxr.recipe.betas == (0.9, 0.99) and cxr.recipe.early_stop == 30 and med.recipe.image_size == 28
    dira = resolve("dira", "dira-dira")
    assert dira.options["mode"] == "dira" and dira.recipe.batch_size == 16 and dira.recipe.init_required
    assert dira.recipe.mean == (0.0,) * 3 and dira.recipe.select == "best-validation"
    assert resolve("dira", "dira-dir").options["mode"] == "dir"
    spark = resolve("spark").recipe
    assert (spark.optimizer, spark.betas, spark.weight_decay_end, spark.clip, spark.warmup_epochs) == (
        "lamb", (0.9, 0.95), 0.2, 5.0, 40)
    assert all(resolve(m).recipe.clip is None for m in METHOD_MODULES if m != "spark")


def test_record_lists_settings_and_deviations():
    record = resolve("simclr", lr=0.5, batch_size=64).record()
    assert record["settings"]["optimizer"] == "lars" and record["peak_lr"] == pytest.approx(0.5 * 64 / 256)
    assert record["overridden"] == ["batch_size", "lr"]
    assert "lr 0.5 (set by the user; paper recipe: 0.3)" in record["deviations"]
    wolf = resolve("byol", "wolf-lidc").record()
    assert "optimizer 'adam' (preset wolf-lidc; paper recipe: 'lars')" in wolf["deviations"]
    assert any("max_epochs=100" in d for d in wolf["deviations"])  # the named reference bug, fixed


def test_bad_presets_and_overrides_say_what_to_do():
    with pytest.raises(UnknownPresetError, match="choose one of .*wolf-lidc"):
        resolve("moco-v2", "wolf")
    with pytest.raises(UnknownPresetError, match="covers \\['moco-v2', 'byol', 'swav'\\]"):
        resolve("spark", "wolf-lidc")
    with pytest.raises(PresetError, match="unknown recipe field"):
        resolve("spark", learning_rate=1.0)
    with pytest.raises(PresetError, match="optimizer 'rmsprop' is not one of"):
        resolve("spark", optimizer="rmsprop")


def test_swav_queue_and_prototype_freezing():
    torch.manual_seed(0)
    options = {"prototypes": 8, "small_crops": 1, "queue": 20, "queue_start_epoch": 1, "freeze_prototypes_epochs": 1}
    swav = build_method("swav", MethodSettings(arch="resnet18", image_size=SIZE, batch_size=8, options=options))
    assert swav.queue.shape == (2, 16, 128)  # 20 cut to a multiple of the batch, as the reference does
    batch = {k: torch.rand(8, 3, SIZE, SIZE) for k in ("view0", "view1")}
    batch["small"] = torch.rand(8, 3, 32, 32)  # one crop of a kind: its key unnumbered
    swav.epoch = 0.5
    swav(batch, 0.0)[0].backward()
    assert swav.prototypes.weight.grad is None and swav.backbone.conv1.weight.grad is not None
    assert swav.queue.abs().sum() == 0  # before queue_start_epoch nothing is queued
    swav.epoch = 1.0
    swav.zero_grad()
    swav(batch, 0.5)[0].backward()
    assert swav.prototypes.weight.grad is not None
    assert swav.queue[:, :8].abs().sum() > 0 and swav.queue[:, 8:].abs().sum() == 0
    scores = torch.zeros(8, 8)
    assert len(swav.with_queue(0, scores, torch.zeros(8, 128))) == 8  # not full yet: the batch alone
    assert len(swav.with_queue(0, scores, torch.zeros(8, 128))) == 8 + 16  # full: queue rows first
    assert build_method("swav", MethodSettings(arch="resnet18", batch_size=4096, options={"queue": 3840})).queue.shape[1] == 0


def test_chaitanya_batches_take_one_slice_per_partition_per_volume(tmp_path):
    from ssl_zoo.pretraining.chaitanya import PartitionBatches, partition_masks
    from ssl_zoo.pretraining.data import Sample

    samples = [Sample(lambda: None, volume=v, position=(d + 0.5) / 8) for v in range(5) for d in range(8)]
    batches = list(PartitionBatches(samples, 8, 4, seed=3, epoch=1))
    assert len(batches) == 2  # 5 volumes, 2 per batch: the incomplete last batch is dropped
    for batch in batches:
        picked = [samples[i] for i, _ in batch]
        assert [(s.volume, int(s.position * 4)) for s in picked] == [
            (picked[0].volume, p) for p in range(4)] + [(picked[4].volume, p) for p in range(4)]
    again = list(PartitionBatches(samples, 8, 4, seed=3, epoch=1))
    assert again == batches  # seeded: a resumed run draws the same slices
    with pytest.raises(TrainingDataError, match="multiple of partitions=4"):
        PartitionBatches(samples, 6, 4, seed=0, epoch=0)
    labels = torch.tensor([0, 1, 0, 1] * 3)  # two slices per partition, three versions each
    pos_gd, neg = partition_masks(labels, "gd")
    pos_minus, neg_minus = partition_masks(labels, "gd-minus")
    assert pos_gd[0].nonzero().flatten().tolist() == [2, 4, 6, 8, 10]  # every other item of partition 0
    assert pos_minus[0].nonzero().flatten().tolist() == [4, 8]  # only its own two augmentations
    assert torch.equal(neg, neg_minus) and neg[0].nonzero().flatten().tolist() == [1, 3, 5, 7, 9, 11]


def test_magical_proxy_pieces():
    from ssl_zoo.pretraining import medical_augment as ma

    x = torch.linspace(0, 1, 101).view(1, 1, 101)
    xs, ys = ma.bezier_curve(ma.BEZIER_CONTROL_SETS[0])
    plain = ma.interp(x, torch.sort(xs).values, torch.sort(ys).values)
    inverted = ma.interp(x, torch.sort(xs).values, ys.flip(0))
    assert torch.allclose(plain, x, atol=1e-3) and torch.allclose(inverted, 1 - x, atol=1e-3)
    image = torch.ones(1, 40, 40)
    assert (ma.stripe_mask(image, 0.6).sum(dim=(0, 2)) == 0).sum() == 24  # 60 % of the rows
    assert ma.block_mask(torch.ones(1, 64, 64), 0.25).mean() == pytest.approx(0.75)  # the ratio is what is hidden


def test_magical_twist_rate_by_counting(monkeypatch):
    from ssl_zoo.pretraining import medical_augment as ma

    calls = []
    monkeypatch.setattr(ma, "twist", lambda image: calls.append(1) or image)
    torch.manual_seed(0)
    for _ in range(400):
        ma.magical_proxy(torch.rand(1, 16, 16), 0.25)
    assert 20 <= len(calls) <= 60  # p 0.1 of 400: 40 ± 3 standard deviations
    moved = ma.twist(torch.rand(1, 32, 32))
    assert moved.shape == (1, 32, 32) and moved.isfinite().all()


def test_cli_lists_presets_and_refuses_an_unknown_one(capsys, tmp_path):
    from ssl_zoo.cli.main import main

    assert main(["pretrain", "--list-presets"]) == 0
    out = capsys.readouterr().out
    for name in ("paper", "wolf-lidc", "magical-cxr", "magical-medmnist", "dira-dir", "dira-dira"):
        assert f"\n{name} sources:" in out
    assert "keyu-tian/SparK@a63e386f8e" in out and "Wolfda95/SSL-MedicalImagining-CL-MAE@87a16277bf" in out
    code = main(["pretrain", "--method", "spark", "--preset", "wolf-lidc", "--data", str(tmp_path),
                 "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "it covers ['moco-v2', 'byol', 'swav']" in err
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_medical_augmentation_choices_by_counting(monkeypatch):
    from ssl_zoo.pretraining import medical_augment as ma

    sets, inverted = [], 0
    real_curve = ma.bezier_curve
    monkeypatch.setattr(ma, "bezier_curve", lambda points: sets.append(points) or real_curve(points))
    ramp = torch.linspace(0, 1, 11)
    torch.manual_seed(0)
    for _ in range(600):
        out = ma.magical_bezier(ramp)
        inverted += bool(out[0] > out[-1])  # every control set maps 0 -> 0 and 1 -> 1 unless inverted
    counts = [sum(s == c for s in sets) for c in ma.BEZIER_CONTROL_SETS]
    assert all(150 <= c <= 250 for c in counts), counts  # uniform over the three fixed sets: 200 ± 3.5 sd
    assert 250 <= inverted <= 350  # p 0.5: 300 ± 4 sd
    branches = {"_cutout": 0, "_outpaint": 0, "_local_shuffle": 0}
    for name in branches:
        monkeypatch.setattr(ma, name, lambda image, name=name: branches.__setitem__(name, branches[name] + 1) or image)
    for _ in range(2000):
        ma.dira_distortion(torch.zeros(1, 8, 8))
    assert abs(branches["_cutout"] - 600) < 90 and abs(branches["_outpaint"] - 100) < 45
    assert abs(branches["_local_shuffle"] - 600) < 90  # the reference's 30 % / 5 % / 30 % (35 % unchanged)


def test_chaitanya_crop_corner_as_the_reference_draws_it():
    """crop_batch at 192 px: a 100 px box whose corner is randint(10, 70) on each axis, resized back."""
    from ssl_zoo.pretraining import medical_augment as ma

    yy, xx = torch.meshgrid(torch.arange(192.0), torch.arange(192.0), indexing="ij")
    coded = (yy * 1000 + xx).unsqueeze(0)  # each pixel holds its own (y, x)
    torch.manual_seed(0)
    corners = [ma.fixed_crop(coded, 100)[0, 0, 0].item() for _ in range(300)]  # 100 -> 100: no resampling
    ys, xs = {int(c // 1000) for c in corners}, {int(c % 1000) for c in corners}
    assert min(ys) == min(xs) == 10 and max(ys) == max(xs) == 69


def test_chaitanya_intensity_contrast_is_about_the_brightened_mean():
    """brit_cont_net: y = clip((x + d - mean(x + d)) * f + mean(x + d), 0, 1.5), d and f drawn in that order."""
    from ssl_zoo.pretraining import medical_augment as ma

    x = torch.linspace(0.0, 1.0, 64).reshape(1, 8, 8)
    torch.manual_seed(3)
    got = ma.intensity(x)
    torch.manual_seed(3)
    d = (torch.rand(()).item() * 2 - 1) * 0.3
    f = 0.7 + torch.rand(()).item() * 0.6
    xs = x.numpy().astype(np.float64) + d
    expected = np.clip((xs - xs.mean()) * f + xs.mean(), 0, 1.5)
    assert np.allclose(got.numpy(), expected, atol=1e-6)
