"""The training loop: CLI to model folder, loading the result, resume, NaN stop, --init, and DDP on CPU."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

import ssl_zoo
from ssl_zoo.cli.main import main
from ssl_zoo.errors import ModelFolderError
from ssl_zoo.pretraining import checkpoint
from ssl_zoo.pretraining.base import MethodSettings, build_method
from ssl_zoo.pretraining.data import ViewDataset, scan
from ssl_zoo.pretraining.loop import LoopSettings, NonFiniteLossError, train
from ssl_zoo.pretraining.recipes import resolve
from ssl_zoo.pretraining.run import initialise, worker_views
from ssl_zoo.runtime import Speed

from .pretrain_data import OPTIONS, SIZE, interrupt_at, write_images
from .pretrain_data import one_thread  # noqa: F401 (an autouse-by-mark fixture)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("pretrain_images") / "images.npz")


@pytest.fixture(scope="module")
def moco_run(images, tmp_path_factory) -> Path:
    """One small MoCo-v2 run through the CLI: 2 epochs of 2 steps."""
    out = tmp_path_factory.mktemp("moco_run")
    code = main(["pretrain", "--method", "moco-v2", "--data", str(images), "--out", str(out), "--epochs", "2",
                 "--batch-size", "8", "--arch", "resnet18", "--image-size", str(SIZE), "-o", "queue=16",
                 "--lr", "0.05", "--device", "cpu", "--quiet"])
    assert code == 0
    return out


def test_cli_run_writes_a_loadable_model_folder(moco_run, capsys):
    import timm

    folder = moco_run / "model"
    config = json.loads((folder / "config.json").read_text())
    training = config["ssl_zoo"]["training"]
    assert config["architecture"] == "resnet18" and training["steps"] == 4 and training["epochs"] == 2
    card = (folder / "README.md").read_text()
    assert "moco-v2" in card and f"{training['final_loss']:.6g}" in card and "loss_curve.png" in card
    assert (folder / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ours = ssl_zoo.load(folder)
    theirs = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    x = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
    plan, = ssl_zoo.publish([str(folder)], namespace="org", dry_run=True, progress=False)
    assert {f.name for f in plan.files} == {"README.md", "config.json", "model.safetensors", "loss_curve.png"}
    trained = torch.load(moco_run / checkpoint.CHECKPOINT, weights_only=True)["method"]
    assert torch.equal(ours.state_dict()["conv1.weight"], trained["backbone.conv1.weight"])


def test_resume_equals_an_uninterrupted_run(images, tmp_path, monkeypatch):
    settings = LoopSettings(epochs=2, batch_size=8, recipe=resolve("moco-v2", lr=0.05).recipe, checkpoint_every=3,
                            progress=False)

    def run(out: Path, resume: bool = False):
        torch.manual_seed(0)
        method = build_method("moco-v2", MethodSettings(arch="resnet18", image_size=SIZE, options=OPTIONS["moco-v2"]))
        data = ViewDataset(scan(images), worker_views(method), SIZE)
        return method, train(method, data, out, settings, Speed.fast("cpu"), resume=resume)

    whole, whole_result = run(tmp_path / "whole")
    resume_normally = interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    resume_normally()
    assert torch.load(tmp_path / "cut" / checkpoint.CHECKPOINT, weights_only=True)["step"] == 3
    resumed, resumed_result = run(tmp_path / "cut", resume=True)
    assert resumed_result.losses == whole_result.losses and len(whole_result.losses) == 4
    expected, got = whole.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)  # weights, momentum twin, queue, pointer


def test_resume_refuses_other_settings(images, tmp_path):
    torch.manual_seed(0)
    method = build_method("simclr", MethodSettings(arch="resnet18", image_size=SIZE))
    data = ViewDataset(scan(images), worker_views(method), SIZE)
    with pytest.raises(checkpoint.ResumeError, match="drop --resume"):
        train(method, data, tmp_path, LoopSettings(epochs=1, batch_size=8), Speed.fast("cpu"), resume=True)
    train(method, data, tmp_path, LoopSettings(epochs=1, batch_size=8, progress=False), Speed.fast("cpu"))
    with pytest.raises(checkpoint.ResumeError, match="batch_size"):
        train(method, data, tmp_path, LoopSettings(epochs=1, batch_size=4), Speed.fast("cpu"), resume=True)


def test_nan_loss_stops_with_a_typed_error(images, tmp_path, monkeypatch):
    from ssl_zoo.pretraining import losses

    monkeypatch.setattr(losses, "nt_xent", lambda z1, z2, tau: (z1.sum() + z2.sum()) * float("nan"))
    torch.manual_seed(0)
    method = build_method("simclr", MethodSettings(arch="resnet18", image_size=SIZE))
    data = ViewDataset(scan(images), worker_views(method), SIZE)
    with pytest.raises(NonFiniteLossError, match="step 1: lower --lr"):
        train(method, data, tmp_path, LoopSettings(epochs=1, batch_size=8, log_every=1, progress=False),
              Speed.fast("cpu"))
    assert not (tmp_path / checkpoint.CHECKPOINT).exists()  # nothing written after the NaN


def test_init_from_a_model_folder_and_a_registry_entry(moco_run, mirror):
    method = build_method("byol", MethodSettings(arch="resnet18", image_size=SIZE, options=OPTIONS["byol"]))
    initialise(method, moco_run / "model")
    folder_weights = ssl_zoo.load_state_dict(moco_run / "model")
    assert torch.equal(method.backbone.state_dict()["layer4.1.conv2.weight"], folder_weights["layer4.1.conv2.weight"])
    assert torch.equal(method.target_backbone.state_dict()["conv1.weight"], folder_weights["conv1.weight"])
    initialise(method, "supervised-r18", progress=False)  # pulled from the loopback mirror
    assert torch.equal(method.backbone.state_dict()["conv1.weight"],
                       ssl_zoo.load_state_dict("supervised-r18")["conv1.weight"])
    with pytest.raises(ModelFolderError, match="--arch resnet18"):
        initialise(build_method("simclr", MethodSettings(arch="resnet50")), moco_run / "model")


def test_unet_method_keeps_its_decoder(images, tmp_path):
    import segmentation_models_pytorch as smp

    written = ssl_zoo.pretrain("magical", images, tmp_path, epochs=1, batch_size=8, arch="resnet18",
                               image_size=SIZE, device="cpu", progress=False)
    config = json.loads((written["unet"] / "config.json").read_text())
    assert config["architecture"] == "unet-resnet18"
    assert config["ssl_zoo"]["parts"] == ["encoder", "decoder", "segmentation_head"]
    unet = smp.Unet("resnet18", encoder_weights=None, classes=1)  # magical-cxr: one grey channel restored
    unet.load_state_dict(ssl_zoo.load_state_dict(written["unet"]), strict=True)
    backbone = ssl_zoo.load(written["model"])
    assert torch.equal(backbone.state_dict()["layer1.0.conv1.weight"], unet.encoder.state_dict()["layer1.0.conv1.weight"])
    loaded = ssl_zoo.load(written["unet"], task="segmentation", classes=1)  # the whole U-Net, as trained
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in unet.state_dict().items())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, images: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from ssl_zoo.pretraining import pretrain
    from ssl_zoo.pretraining.base import MethodSettings as Settings, build_method as build

    import ssl_zoo.pretraining.run as run

    kept = {}

    def build_and_keep(name, settings: Settings):
        kept["method"] = build(name, settings)
        return kept["method"]

    run.build_method = build_and_keep
    pretrain("moco-v2", images, out, epochs=1, batch_size=8, arch="resnet18", image_size=SIZE, device="cpu",
             options={"queue": 32}, progress=False)
    state = {k: v for k, v in kept["method"].state_dict().items()}
    torch.save(state, Path(out) / f"rank{rank}.pt")


def test_ddp_two_processes_on_cpu(images, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_ddp_worker, args=(2, _free_port(), str(images), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # DDP kept the weights identical (BN running statistics are per process, as in any DDP run without
    # SyncBN); the queue holds the keys gathered from both processes
    differing = {k for k in ranks[0] if not torch.equal(ranks[0][k], ranks[1][k])}
    assert differing and all(k.endswith(("running_mean", "running_var")) for k in differing), differing
    assert torch.equal(ranks[0]["queue.keys"], ranks[1]["queue.keys"])
    assert int(ranks[0]["queue.pointer"]) == 2 * 8  # 2 steps of 4 keys from each of 2 processes
    assert ssl_zoo.load(tmp_path / "model") is not None
    assert json.loads((tmp_path / "model" / "config.json").read_text())["ssl_zoo"]["training"]["steps"] == 2
