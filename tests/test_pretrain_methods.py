"""Every pre-training method learns: on a fixed batch of its own views of structured images, its loss goes down."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from ssl_zoo.pretraining.base import METHOD_MODULES, MethodSettings, UnknownMethodError, build_method
from ssl_zoo.pretraining.data import ViewDataset, scan
from ssl_zoo.pretraining.run import worker_views

from .pretrain_data import OPTIONS, SIZE, write_images, write_volumes
from .pretrain_data import one_thread  # noqa: F401 (an autouse-by-mark fixture)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pretrain_data")
    return {"images": write_images(root / "images.npz"), "volumes": write_volumes(root / "volumes.npz")}


def fixed_batch(method, path: Path) -> dict[str, torch.Tensor]:
    dataset = ViewDataset(scan(path), worker_views(method), SIZE)  # the view recipe's CPU path, or the method's own
    return default_collate([dataset[(3 * i % len(dataset), i)] for i in range(8)])


@pytest.mark.parametrize("name", list(METHOD_MODULES))
def test_loss_goes_down(name, data):
    torch.manual_seed(0)
    method = build_method(name, MethodSettings(arch="resnet18", image_size=SIZE, options=OPTIONS.get(name, {})))
    batch = fixed_batch(method, data["volumes" if method.needs_volumes else "images"])
    assert batch[next(iter(batch))].shape[-1] == SIZE
    optimizer = torch.optim.Adam([p for p in method.parameters() if p.requires_grad], lr=1e-3)
    history = []
    for _ in range(8):
        torch.manual_seed(1)  # the same masks and shuffles every step: only the weights change
        loss, parts = method(batch, 0.5)
        assert parts and all(torch.isfinite(v) for v in parts.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        method.after_step(0.5)
        history.append(loss.item())
    # MoCo-style queues start random: compare with the worst of the first steps, once real keys are queued.
    assert sum(history[-3:]) / 3 < 0.95 * max(history[:3]), history


def test_unknown_method_and_option():
    with pytest.raises(UnknownMethodError, match="choose one of"):
        build_method("mocov9", MethodSettings())
    with pytest.raises(UnknownMethodError, match="no option"):
        build_method("simclr", MethodSettings(arch="resnet18", options={"temperature": 0.1}))


def test_spark_backbone_keys_stay_timm_and_bn_is_sparse():
    from ssl_zoo.architectures import trunk_shapes

    torch.manual_seed(0)
    method = build_method("spark", MethodSettings(arch="resnet18", image_size=SIZE, options=OPTIONS["spark"]))
    assert set(method.encoder().state_dict()) == set(trunk_shapes("resnet18"))
    bn = method.encoder().bn1
    x = torch.randn(2, 64, 16, 16)
    method.mask_state.active = torch.zeros(2, 1, 1, 1, dtype=torch.bool)
    method.mask_state.active[0] = True  # image 0 visible, image 1 hidden
    out = bn(x)
    method.mask_state.active = None
    assert (out[1] == 0).all() and out[0].abs().sum() > 0
    # statistics over the active positions only: they are standardised per channel
    assert out[0].mean(dim=(1, 2)).abs().max() < 1e-4


def test_cli_offers_every_method():
    from ssl_zoo.cli.pretraining import METHODS

    assert list(METHODS) == list(METHOD_MODULES)


def test_dira_adversary_only_in_the_dira_stage_and_local_stage_keeps_the_encoder(data):
    torch.manual_seed(0)
    dira = build_method("dira", MethodSettings(arch="resnet18", image_size=SIZE, options={"queue": 16}))
    batch = fixed_batch(dira, data["images"])
    loss, parts = dira(batch, 0.9)  # the dir stage: discriminative + restorative only, at any progress
    loss.backward()
    assert set(parts) == {"infonce", "restore"}
    assert all(p.grad is None for p in dira.discriminator.parameters())
    dira.zero_grad()
    dira.opts["mode"] = "dira"
    loss, parts = dira(batch, 0.1)
    loss.backward()
    assert set(parts) == {"infonce", "restore", "adversarial", "discriminator"}
    assert all(p.grad is not None for p in dira.discriminator.parameters())

    local = build_method("chaitanya-local", MethodSettings(arch="resnet18", image_size=SIZE))
    before = {k: v.clone() for k, v in local.encoder().state_dict().items()}
    optimizer = torch.optim.Adam([p for p in local.parameters() if p.requires_grad], lr=1e-2)
    loss, _ = local(fixed_batch(local, data["images"]), 0.5)
    loss.backward()
    optimizer.step()
    after = local.encoder().state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics untouched


JOINT_EMBEDDING = [name for name, module in METHOD_MODULES.items() if module == "contrastive"]


@pytest.mark.parametrize("name", JOINT_EMBEDDING)
def test_device_views_end_to_end(name, tmp_path, monkeypatch):
    """views="device" forced on the CPU (kornia): every training and validation batch's views come from
    make_views on plain images, the loss stays finite, and the model folder loads."""
    import json

    import ssl_zoo
    from ssl_zoo.pretraining import pretrain, views
    from ssl_zoo.pretraining.monitor import MonitorSettings

    real, drawn = views.make_views, []

    def counted(recipe, images, *, device):
        drawn.append((recipe.name, tuple(images.shape)))
        return real(recipe, images, device=device)

    monkeypatch.setattr(views, "make_views", counted)
    data = write_images(tmp_path / "images.npz", n=10)
    out = pretrain(name, data, tmp_path / "run", epochs=1, batch_size=4, arch="resnet18", image_size=SIZE,
                   device="cpu", progress=False, views="device", options=OPTIONS.get(name, {}),
                   watch=MonitorSettings(val_fraction=0.2))
    training = [shape for _, shape in drawn if shape[0] == 4]
    assert len(training) == 2 and {recipe for recipe, _ in drawn} == {name}
    assert all(shape[1:] == (3, SIZE, SIZE) for _, shape in drawn)  # the workers sent plain resized images
    record = json.loads((out["model"] / "config.json").read_text())["ssl_zoo"]["training"]
    assert math.isfinite(record["final_loss"]) and f"{name} on the device" in record["watched"]["views"]
    assert all(math.isfinite(loss) for _, loss in record["watched"]["validation"])
    model, preprocess = ssl_zoo.load(out["model"]).eval(), ssl_zoo.transforms(out["model"])
    with torch.no_grad():
        features = model(torch.stack([preprocess(np.full((SIZE, SIZE), v, np.uint8)) for v in (30, 220)]))
    assert features.shape == (2, 512) and torch.isfinite(features).all()


def test_magical_views_keep_the_image_as_read():
    """TOWER's pre-training loaders neither crop nor flip: the restoration target is the image as read."""
    method = build_method("magical", MethodSettings(arch="resnet18", image_size=SIZE))
    image = torch.linspace(0, 1, 3 * SIZE * SIZE).reshape(3, SIZE, SIZE)
    for seed in range(4):
        torch.manual_seed(seed)
        assert torch.equal(method.views(image, {})["original"], image)
