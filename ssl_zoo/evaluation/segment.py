"""Binary segmentation under a preset: an smp U-Net whose encoder is the model under test.

Preset ``benchmark-transfer`` (BenchmarkTransferLearning V1 ``main_segmentation.py``, DiRA's downstream): images and
masks resized to 224 x 224, no normalisation, Adam lr 1e-3, batch 32, at most 200 epochs; after epoch ``e`` the lr
becomes ``lr / 2 * (cos(pi * e / epochs) + 1)`` (``cosine_anneal_schedule``); loss ``1 - (2 sum(y p) + 1) /
(sum(y) + sum(p) + 1)`` on the batch's sigmoid probabilities (``torch_dice_coef_loss``); the epoch with the lowest
validation loss is kept, training stops after 20 epochs without a lower one; training augmentation (paired for image
and mask, ``segment_augment``): with p 0.3 one of brightness/contrast or gamma, with p 0.3 one of elastic, grid or
optical distortion, with p 0.25 a random square crop of 156..224 pixels resized back. Preset ``magical``:
``StepLR(30, 0.5)`` and selection by validation Dice. Both transfer the ENCODER only: the decoder of a U-Net entry
is re-initialised unless ``keep_decoder`` is set, and the segmentation head is always fresh. The std over trials is
the population std.

Masks (binary, or multi-class with ``classes`` > 1), the Dice / IoU rule and the Dice loss: ``segment_masks``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import PresetError
from ..extras import extra_imports
from ..progress import bar
from .data import Samples
from .preprocess import SizedTransform, normalization_for
from .presets import resolve
from .report import report_trials
from .segment_masks import MaskDataset, dice_iou, dice_loss, foreground, probabilities
from .splits import check_run, label_fraction as subsample
from .splits import make_splits


@dataclass(frozen=True)
class SegmentSettings:
    """Settings of U-Net segmentation (defaults: BenchmarkTransferLearning V1 ``main_segmentation.py``).

    Attributes:
        image_size: Square side images and masks are resized to (a multiple of 32).
        normalization: A rule of ``preprocess.NORMALIZATIONS`` ("none" upstream: ``--normalization None``).
        epochs: At most this many epochs.
        patience: Epochs without a better validation value that stop training.
        batch_size: Training images per step.
        lr: Adam learning rate.
        schedule: "cosine-epoch" (``cosine_anneal_schedule`` after each epoch), "step" (``StepLR(step_size,
            gamma)``) or "constant".
        step_size: StepLR period in epochs.
        gamma: StepLR factor.
        loss: "dice" (smoothed soft Dice over the batch) or "bce".
        select_on: "loss" (lowest validation loss) or "dice" (highest mean validation Dice).
        augment: The paired training augmentation of the module docstring (``segment_augment``).
        keep_decoder: Keep a U-Net entry's pre-trained decoder (default: encoder-only transfer).
        classes: Foreground classes: 1 (binary, mask > 0) or K > 1 (masks hold ids 0..K; softmax over K + 1).
        population_std: Report ``np.std`` (ddof 0) over trials.
    """

    image_size: int = 224
    normalization: str = "none"
    epochs: int = 200
    patience: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "cosine-epoch"
    step_size: int = 30
    gamma: float = 0.5
    loss: str = "dice"
    select_on: str = "loss"
    augment: bool = True
    keep_decoder: bool = False
    classes: int = 1
    population_std: bool = True


def cosine_anneal(epoch: int, epochs: int, lr: float) -> float:
    """BenchmarkTransfer's ``cosine_anneal_schedule``: ``lr / 2 * (cos(pi * epoch / epochs) + 1)``."""
    return lr / 2 * (math.cos(math.pi * (epoch % epochs) / epochs) + 1)


def build_unet(ref: str | Path, *, in_chans: int = 3, keep_decoder: bool = False, classes: int = 1,
               progress: bool = True) -> tuple[Any, dict]:
    """An ``smp.Unet`` with ``ref`` as encoder (1 output, or ``classes + 1``) and the folder's ``config.json``.

    The decoder is re-initialised (smp's ``initialize_decoder``) unless ``keep_decoder``; the head always is.
    """
    with extra_imports():
        from segmentation_models_pytorch.base.initialization import initialize_decoder, initialize_head

    from ..loading import load
    from ..resolve import resolve_folder
    from ..modelfolder.files import read_config

    folder = resolve_folder(ref, progress=progress)
    # no input guard: the preset sets the normalisation (upstream's U-Net runs feed [0,1] pixels, "none") and the
    # record names it; a warning to use ssl_zoo.transforms would contradict the paper's recipe
    unet = load(folder, task="segmentation", classes=1 if classes == 1 else classes + 1, in_chans=in_chans,
                progress=progress, guard=False)
    if not keep_decoder:
        initialize_decoder(unet.decoder)
    initialize_head(unet.segmentation_head)
    return unet, read_config(folder)


def evaluate(net: Any, samples: Samples, transform: Callable, speed: Any, settings: SegmentSettings) -> dict[str, float]:
    """Mean per-image Dice and IoU (``segment_masks``) and the mean batch loss of ``net`` on ``samples``."""
    import torch

    k, loss_fn = settings.classes, loss_of(settings)
    loader = torch.utils.data.DataLoader(MaskDataset(samples, transform, k), batch_size=settings.batch_size,
                                         **speed.loader_kwargs())
    dices, ious, losses = [], [], []
    net.eval()
    with torch.inference_mode(), speed.autocast():
        for images, masks in loader:
            probs, masks = probabilities(net(speed.batch(images)), k).cpu(), foreground(masks, k)
            dice, iou = dice_iou(probs, masks, k)
            dices.append(dice)
            ious.append(iou)
            losses.append(float(loss_fn(probs, masks)) * len(images))
    return {"dice": float(torch.cat(dices).mean()), "iou": float(torch.cat(ious).mean()),
            "loss": sum(losses) / len(samples)}


def loss_of(settings: SegmentSettings) -> Callable:
    """The training loss on foreground probabilities: BenchmarkTransfer's Dice loss or binary cross-entropy."""
    import torch.nn.functional as F

    if settings.loss == "dice":
        return dice_loss
    if settings.loss == "bce":
        return lambda probs, masks: F.binary_cross_entropy(probs.clamp(1e-7, 1 - 1e-7), masks)
    raise PresetError(f"segment loss {settings.loss!r} is not one of dice, bce")


def set_lr(optimizer: Any, settings: SegmentSettings, epoch: int) -> None:
    """The learning rate after ``epoch`` under the preset's schedule."""
    if settings.schedule == "cosine-epoch":
        lr = cosine_anneal(epoch, settings.epochs, settings.lr)
    elif settings.schedule == "step":
        lr = settings.lr * settings.gamma ** ((epoch + 1) // settings.step_size)
    elif settings.schedule == "constant":
        lr = settings.lr
    else:
        raise PresetError(f"segment schedule {settings.schedule!r} is not one of cosine-epoch, step, constant")
    for group in optimizer.param_groups:
        group["lr"] = lr


def fit_unet(net: Any, parts: dict[str, Samples], transforms: tuple, speed: Any, settings: SegmentSettings,
             seed: int, progress: bool) -> dict:
    """Train with early stopping on the preset's validation value; ``net`` ends with its best epoch's weights."""
    import torch

    s, loss_fn = settings, loss_of(settings)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)
    dataset = MaskDataset(parts["train"], transforms[0], s.classes, augment_seed=seed if s.augment else None)
    loader = torch.utils.data.DataLoader(dataset, batch_size=s.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed),
                                         drop_last=len(parts["train"]) % s.batch_size == 1, **speed.loader_kwargs())
    best, best_epoch, best_state, history = -math.inf, 0, None, []
    for epoch in bar(range(s.epochs), progress=progress, desc="epochs"):
        net.train()
        for images, masks in loader:
            with speed.autocast():
                logits = net(speed.batch(images))
            loss = loss_fn(probabilities(logits, s.classes), foreground(masks.to(speed.device), s.classes))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        set_lr(optimizer, s, epoch)
        val = evaluate(net, parts["val"], transforms[1], speed, s)
        history.append({"epoch": epoch, "val": val})
        value = -val["loss"] if s.select_on == "loss" else val["dice"]
        if value > best:
            best, best_epoch, best_state = value, epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= s.patience:
            break
    net.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "epochs_run": len(history), "selected_by": s.select_on,
            "best_val": history[best_epoch]["val"], "history": history}


def segment_trial(model: str | Path, parts: dict[str, Samples], *, seed: int, fraction: float, options: dict,
                  speed: Any) -> dict[str, Any]:
    """One trial: subsample, fresh U-Net (encoder transferred), fit, score on test."""
    import torch

    s, in_chans = options["settings"], options["in_chans"]
    torch.manual_seed(seed)
    keep = subsample(np.arange(len(parts["train"])), fraction, seed=seed, groups=parts["train"].groups)
    unet, config = build_unet(model, in_chans=in_chans, keep_decoder=s.keep_decoder, classes=s.classes,
                              progress=options["progress"])
    norm = normalization_for(s.normalization, config, in_chans)
    transform = SizedTransform(s.image_size, norm["mean"], norm["std"])
    net = speed.prepare(unet)
    run = fit_unet(net, {**parts, "train": parts["train"].subset(keep)}, (transform, transform), speed, s, seed,
                   options["progress"])
    test = evaluate(net, parts["test"], transform, speed, s)
    return {**run, "seed": seed, "test": test, "train_indices": keep.tolist()}


def segment(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
            label_fraction: float = 1.0, trials: int = 1, seed: int = 0, preset: str | None = None,
            in_chans: int = 3, device: str | None = None, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Train and test a U-Net with ``model`` as encoder ``trials`` times under a preset (default benchmark-transfer).

    Args:
        model: A registry name, ``hf-hub:`` reference or model folder.
        data: Image / mask ``Samples`` (split here with ``seed``) or the dataset's own splits.
        out_dir: Where ``segment.json`` and ``splits.json`` go (nothing written when None).
        label_fraction: Share of the training split used.
        trials: Independent runs (seed + t).
        seed: Seed of the splits and of trial 0.
        preset: "benchmark-transfer" or "magical" (a preset with a ``[segment]`` table).
        in_chans: Model input channels.
        device: Default CUDA when present.
        progress: Progress bars on stderr.
        **overrides: Single ``SegmentSettings`` fields (``epochs=``, ``keep_decoder=True`` ...); ``image_size`` must
            be a multiple of 32.

    Returns:
        ``{"protocol": "segmentation", ..., "summary": {"dice", "iou"}, "preset": {...}}``.

    Example:
        >>> segment("moco-v2", read_segmentation_pairs("lungs/images", "lungs/masks"), trials=3, out_dir="runs/seg")
    """
    check_run(data, label_fraction=label_fraction, trials=trials)  # before any model is loaded
    from ..modelfolder.files import read_config
    from ..resolve import resolve_folder
    from ..runtime import Speed

    resolved = resolve("segment", preset, **overrides)
    speed = Speed.fast(device)
    parts, index = make_splits(data, seed=seed)
    options = {"in_chans": in_chans, "progress": progress, "settings": resolved.settings}
    folder = resolve_folder(model, progress=progress)  # resolved once; each trial builds a fresh U-Net from it
    with speed.numerics():
        runs = [segment_trial(folder, parts, seed=seed + t, fraction=label_fraction, options=options, speed=speed)
                for t in range(trials)]
    extra = {"preset": resolved.record(),
             "normalization": normalization_for(resolved.settings.normalization, read_config(folder), in_chans)}
    return report_trials("segmentation", model, parts, index, runs, seed=seed, label_fraction=label_fraction,
                         metrics=("dice", "iou"), out_dir=out_dir, filename="segment.json", extra=extra,
                         ddof=0 if resolved.settings.population_std else 1)
