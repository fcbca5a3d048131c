"""Watching a run: grouped validation split, per-epoch validation loss (recomputed by hand), best-checkpoint
selection, early stopping, metrics CSV and TensorBoard files, the probe accuracy, device views in the loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import default_collate

from ssl_zoo.errors import MonitorSetupError, WandbMissingError
from ssl_zoo.pretraining import checkpoint, loop, pretrain
from ssl_zoo.pretraining.base import MethodSettings, build_method
from ssl_zoo.pretraining.data import ResumableBatches, Sample, ViewDataset, scan
from ssl_zoo.pretraining.metrics import METRICS, MetricsLog, read_metrics
from ssl_zoo.pretraining.monitor import BEST, VALIDATION_SEED, Monitor, MonitorSettings, split_validation
from ssl_zoo.pretraining.probe import knn_accuracy
from ssl_zoo.pretraining.run import worker_views

from .pretrain_data import OPTIONS, SIZE, interrupt_at, write_images
from .pretrain_data import one_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_thread")
IMPORTED_BEFORE = {name for name in __import__("sys").modules if name.startswith("tensorflow")}
RUN = dict(arch="resnet18", image_size=SIZE, device="cpu", progress=False, lr=0.05, batch_size=8)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("monitor_images") / "images.npz", n=20)


@pytest.fixture(scope="module")
def watched_run(images, tmp_path_factory) -> Path:
    """MoCo-v2, 20 images, 20 % validation (4 images), 2 epochs of 2 steps, views in the workers."""
    out = tmp_path_factory.mktemp("watched")
    pretrain("moco-v2", images, out, epochs=2, options=OPTIONS["moco-v2"], views="workers",
             watch=MonitorSettings(val_fraction=0.2), **RUN)
    return out


def test_validation_split_is_seeded_and_keeps_groups_whole():
    samples = [Sample(lambda: None, volume=i // 5, position=0.1) for i in range(50)]  # 10 volumes of 5 slices
    samples += [Sample(lambda: None, group=f"patient{i % 4}") for i in range(20)] + [Sample(lambda: None)] * 10
    train, val = split_validation(samples, 0.25, seed=3)
    again, val_again = split_validation(samples, 0.25, seed=3)
    assert [id(s) for s in val] == [id(s) for s in val_again] and len(train) + len(val) == len(samples)
    val_volumes = {s.volume for s in val if s.volume >= 0}
    assert all(s.volume not in val_volumes for s in train if s.volume >= 0)
    val_patients = {s.group for s in val if s.group}
    assert all(s.group not in val_patients for s in train if s.group)
    # 10 volumes + 4 patients + 10 single images = 24 groups; floor(0.25 * 24) = 6 held out
    assert len(val_volumes) + len(val_patients) + sum(1 for s in val if s.volume < 0 and not s.group) == 6
    assert split_validation(samples, 0.25, seed=4)[1] != val
    assert split_validation(samples, 0.0, seed=3)[1] == []


def test_validation_loss_equals_the_loss_recomputed_by_hand(watched_run, images):
    rows = read_metrics(watched_run / METRICS)
    val_rows = [r for r in rows if "val_loss" in r]
    assert [r["step"] for r in val_rows] == [2, 4] and [r["epoch"] for r in val_rows] == [1.0, 2.0]
    train_rows = [r for r in rows if "loss" in r]
    assert train_rows and all({"lr", "images_per_s"} <= set(r) for r in train_rows)
    # The final state (checkpoint at step 4), eval mode, the validation samples' fixed augmentation seeds.
    method = build_method("moco-v2", MethodSettings(arch="resnet18", image_size=SIZE, options=OPTIONS["moco-v2"]))
    method.load_state_dict(torch.load(watched_run / checkpoint.CHECKPOINT, weights_only=True)["method"])
    method.eval()
    _, val = split_validation(scan(images), 0.2, seed=0)
    data = ViewDataset(val, worker_views(method), SIZE)
    losses = []
    with torch.no_grad():
        for keys in ResumableBatches(len(val), 4, seed=VALIDATION_SEED, epoch=0):
            losses.append(method(default_collate([data[k] for k in keys]), 1.0)[0].item())
    assert val_rows[-1]["val_loss"] == pytest.approx(np.mean(losses), rel=1e-5)


def test_tensorboard_events_and_card(watched_run):
    import sys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert "tensorflow" not in sys.modules or "tensorflow" in IMPORTED_BEFORE  # the writer never imports TF

    events = EventAccumulator(str(watched_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/images_per_s", "val/loss"} <= tags
    assert [e.step for e in events.Scalars("val/loss")] == [2, 4]
    config = json.loads((watched_run / "model" / "config.json").read_text())
    watched = config["ssl_zoo"]["training"]["watched"]
    assert watched["output"] == "last" and watched["output_step"] == 4 and watched["val_images"] == 4
    assert "in the data-loader workers" in watched["views"]
    card = (watched_run / "model" / "README.md").read_text()
    assert "**Output checkpoint:** last (step 4)" in card and "4 images" in card


def test_best_checkpoint_selection_and_early_stop(images, tmp_path, monkeypatch):
    """Scripted validation losses 3, 1, 2, 4: the output is the state after epoch 2, and with patience 2 the run
    stops after epoch 4 of 6."""
    scripted = iter([3.0, 1.0, 2.0, 4.0, 5.0, 6.0])
    monkeypatch.setattr(loop, "validation_loss", lambda *a, **k: next(scripted))
    saved = {}
    real_end = Monitor.end_epoch

    def spy(self, step, epoch, loss, method, probe):
        saved[step] = method.encoder().state_dict()["conv1.weight"].clone()
        return real_end(self, step, epoch, loss, method, probe)

    monkeypatch.setattr(Monitor, "end_epoch", spy)
    pretrain("moco-v2", images, tmp_path, epochs=6, options=OPTIONS["moco-v2"],
             watch=MonitorSettings(val_fraction=0.2, select="best-validation", early_stop=2, why="as the paper"),
             **RUN)
    assert sorted(saved) == [2, 4, 6, 8]  # 4 epochs of 2 steps, then stopped
    out = load_file(tmp_path / "model" / "model.safetensors")
    assert torch.equal(out["conv1.weight"], saved[4]) and not torch.equal(out["conv1.weight"], saved[8])
    assert torch.load(tmp_path / checkpoint.CHECKPOINT, weights_only=True)["step"] == 8
    assert (tmp_path / BEST).is_file()
    watched = json.loads((tmp_path / "model" / "config.json").read_text())["ssl_zoo"]["training"]["watched"]
    assert watched["output"] == "best-validation" and watched["output_step"] == 4 and watched["stopped_early"]
    assert watched["why"] == "as the paper" and watched["best_val_loss"] == 1.0
    deviations = json.loads((tmp_path / "model" / "config.json").read_text())["ssl_zoo"]["training"]["settings"][
        "deviations"]
    assert "select 'best-validation' (set by the user; paper recipe: 'last')" in deviations
    assert [v for _, v in watched["validation"]] == [3.0, 1.0, 2.0, 4.0]


def test_selecting_best_without_a_validation_split_says_so(images, tmp_path, capsys):
    pretrain("moco-v2", images, tmp_path, epochs=1, options=OPTIONS["moco-v2"],
             watch=MonitorSettings(val_fraction=0.0, select="best-validation"), **RUN)
    watched = json.loads((tmp_path / "model" / "config.json").read_text())["ssl_zoo"]["training"]["watched"]
    assert watched["output"] == "last" and "no validation split" in watched["why"]
    assert "needs a validation split" in capsys.readouterr().err


def test_device_views_in_the_loop_and_the_probe(images, tmp_path):
    """BYOL with its views drawn batched (kornia on the CPU here) and a k-NN probe every epoch."""
    probe = tmp_path / "probe"
    for name in ("discs", "stripes"):
        (probe / name).mkdir(parents=True)
    from PIL import Image

    yy, xx = np.mgrid[:SIZE, :SIZE]
    for i in range(10):
        Image.fromarray(np.where((xx - 10 - i) ** 2 + (yy - 16) ** 2 < 40, 220, 30).astype(np.uint8)).save(
            probe / "discs" / f"{i}.png")
        Image.fromarray(np.where((xx + i) // 4 % 2 == 0, 220, 30).astype(np.uint8)).save(probe / "stripes" / f"{i}.png")
    out = tmp_path / "run"
    pretrain("byol", images, out, epochs=1, options=OPTIONS["byol"], views="device",
             watch=MonitorSettings(val_fraction=0.2, probe_data=str(probe)), **RUN)
    watched = json.loads((out / "model" / "config.json").read_text())["ssl_zoo"]["training"]["watched"]
    assert "byol on the device" in watched["views"]
    (step, accuracy), = watched["probe_accuracy"]
    assert step == 2 and 0.0 <= accuracy <= 1.0
    assert any("probe_accuracy" in r for r in read_metrics(out / METRICS))


def test_knn_accuracy_by_hand():
    """Weighted k-NN: cosine similarities, votes exp(sim / T) of the k nearest; checked against a direct loop."""
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(30, 5)), rng.normal(size=(12, 5))
    train_y, test_y = rng.integers(0, 3, 30), rng.integers(0, 3, 12)
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    hits = 0
    for x, y in zip(unit(test), test_y):
        sims = unit(train) @ x
        nearest = np.argsort(-sims)[:7]
        votes = np.zeros(3)
        for j in nearest:
            votes[train_y[j]] += np.exp(sims[j] / 0.1)
        hits += votes.argmax() == y
    ours = knn_accuracy(*(torch.as_tensor(a) for a in (train, train_y, test, test_y)), k=7, t=0.1)
    assert ours == pytest.approx(hits / 12)


def test_resume_keeps_metric_rows_up_to_the_checkpoint(tmp_path):
    log = MetricsLog(tmp_path)
    for step in range(1, 6):
        log.write(step, step / 5, loss=float(step))
    log.close()
    MetricsLog(tmp_path, resume_step=3).close()
    assert [r["step"] for r in read_metrics(tmp_path / METRICS)] == [1, 2, 3]


def test_bad_watch_settings_and_missing_wandb(tmp_path, monkeypatch):
    with pytest.raises(MonitorSetupError, match="best-validation"):
        MonitorSettings(select="best")
    with pytest.raises(MonitorSetupError, match="0.05"):
        MonitorSettings(val_fraction=1.5)
    with pytest.raises(MonitorSetupError, match="monitor-every"):
        MonitorSettings(probe_every=0)  # would divide by zero at the end of the first epoch
    with pytest.raises(MonitorSetupError, match="early-stop"):
        MonitorSettings(early_stop=-1)
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb":
            raise ImportError("no wandb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    with pytest.raises(WandbMissingError, match="pip install wandb"):
        MetricsLog(tmp_path, wandb=True)


def test_resumed_run_keeps_its_validation_history_and_metric_rows(images, tmp_path, monkeypatch):
    """Interrupted after step 3 of 4 (checkpoint at 3), resumed through the CLI: the history holds both epochs'
    validation losses, the CSV one validation row per epoch and no duplicated training rows."""
    from ssl_zoo.cli.main import main

    args = ["pretrain", "--method", "moco-v2", "--data", str(images), "--out", str(tmp_path), "--epochs", "2",
            "--batch-size", "8", "--arch", "resnet18", "--image-size", str(SIZE), "-o", "queue=16", "--lr", "0.05",
            "--device", "cpu", "--quiet", "--val-fraction", "0.2", "--checkpoint-every", "3", "--intensity", "minmax",
            "--views", "device", "--monitor-every", "1"]
    resume_normally = interrupt_at(monkeypatch, 3)
    assert main(args) != 0  # the CLI reports the interruption
    assert torch.load(tmp_path / checkpoint.CHECKPOINT, weights_only=True)["step"] == 3
    resume_normally()
    assert main([*args, "--resume"]) == 0
    rows = read_metrics(tmp_path / METRICS)
    assert [r["step"] for r in rows if "val_loss" in r] == [2, 4]
    train_steps = [r["step"] for r in rows if "loss" in r]
    assert train_steps == sorted(set(train_steps))
    watched = json.loads((tmp_path / "model" / "config.json").read_text())["ssl_zoo"]["training"]["watched"]
    assert [s for s, _ in watched["validation"]] == [2, 4] and watched["intensity"] == "minmax"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/loss")] == [2, 4]  # the resumed file purged nothing it needed
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == sorted(set(steps))
