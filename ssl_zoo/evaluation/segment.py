"""Binary segmentation: an smp U-Net whose encoder is the model under test, trained with Dice loss.

The U-Net comes from ``ssl_zoo.load(ref, task="segmentation", classes=1)``: a backbone entry becomes the encoder of
a fresh decoder, a U-Net entry brings its own decoder too.
Adam, ``smp.losses.DiceLoss`` on logits, early stopping on the validation Dice; label fractions and trials as
in ``finetune``.

Metrics per image, from torchmetrics' true/false positive counts at probability 0.5:
``Dice = 2TP / (2TP + FP + FN)``, ``IoU = TP / (TP + FP + FN)``. **Empty-mask rule:** when the prediction and the
target are both empty (denominator 0) both metrics are 1.0; an empty target with a non-empty prediction scores 0.
The reported value is the mean over images.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..progress import bar
from .data import Samples, load_item
from .preprocess import build_transform
from .report import report_trials
from .splits import label_fraction as subsample
from .splits import make_splits
from ..extras import extra_imports


def dice_iou(probs: Any, masks: Any) -> tuple[Any, Any]:
    """Per-image Dice and IoU tensors of (N, 1, H, W) probabilities against 0/1 masks (empty rule above)."""
    import torch
    with extra_imports():
        from torchmetrics.functional.classification import binary_stat_scores

    stats = binary_stat_scores(probs.flatten(1), masks.flatten(1).long(), threshold=0.5,
                               multidim_average="samplewise")
    tp, fp, fn = (stats[:, i].double() for i in (0, 1, 3))
    empty = (tp + fp + fn) == 0
    dice = torch.where(empty, 1.0, 2 * tp / (2 * tp + fp + fn).clamp(min=1))
    iou = torch.where(empty, 1.0, tp / (tp + fp + fn).clamp(min=1))
    return dice, iou


class MaskDataset:
    """(image tensor, (1, H, W) 0/1 mask tensor resized to the image with nearest neighbours)."""

    def __init__(self, samples: Samples, transform: Callable) -> None:
        self.samples, self.transform = samples, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch
        import torch.nn.functional as F

        image = self.transform(load_item(self.samples.items[index]))
        mask = load_item(self.samples.targets[index])
        mask = torch.as_tensor((mask if mask.ndim == 2 else mask.max(-1)) > 0, dtype=torch.float32)[None, None]
        return image, F.interpolate(mask, size=image.shape[-2:], mode="nearest")[0]


def build_unet(ref: str | Path, *, in_chans: int = 3, progress: bool = True) -> tuple[Any, dict, Path]:
    """A one-class ``smp.Unet`` with ``ref`` as encoder (``ssl_zoo.load(task="segmentation")``), its data config
    and the model folder ``ref`` resolved to."""
    from ..modelfolder.files import read_config
    from ..loading import data_cfg_for, load
    from ..resolve import resolve_folder

    folder = resolve_folder(ref, progress=progress)
    unet = load(folder, task="segmentation", classes=1, in_chans=in_chans, progress=progress)
    return unet, data_cfg_for(read_config(folder)["pretrained_cfg"], in_chans), folder


def evaluate(net: Any, samples: Samples, transform: Callable, speed: Any, batch_size: int) -> dict[str, float]:
    import torch

    loader = torch.utils.data.DataLoader(MaskDataset(samples, transform), batch_size=batch_size,
                                         **speed.loader_kwargs())
    dices, ious = [], []
    net.eval()
    with torch.inference_mode(), speed.autocast():
        for images, masks in loader:
            dice, iou = dice_iou(net(speed.batch(images)).float().sigmoid().cpu(), masks)
            dices.append(dice)
            ious.append(iou)
    return {"dice": float(torch.cat(dices).mean()), "iou": float(torch.cat(ious).mean())}


def fit_unet(net: Any, parts: dict[str, Samples], transforms: tuple, speed: Any, options: dict, seed: int) -> dict:
    """Dice-loss training with early stopping on validation Dice; ``net`` ends with its best weights."""
    with extra_imports():
        import segmentation_models_pytorch as smp
    import torch

    loss_fn = smp.losses.DiceLoss("binary", from_logits=True)
    optimizer = torch.optim.Adam(net.parameters(), lr=options["lr"])
    loader = torch.utils.data.DataLoader(MaskDataset(parts["train"], transforms[0]), batch_size=options["batch_size"],
                                         shuffle=True, generator=torch.Generator().manual_seed(seed),
                                         drop_last=len(parts["train"]) % options["batch_size"] == 1,
                                         **speed.loader_kwargs())
    best, best_epoch, best_state, history = -1.0, 0, None, []
    for epoch in bar(range(options["epochs"]), progress=options["progress"], desc="epochs"):
        net.train()
        for images, masks in loader:
            with speed.autocast():
                logits = net(speed.batch(images))
            loss = loss_fn(logits.float(), masks.to(speed.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val = evaluate(net, parts["val"], transforms[1], speed, options["batch_size"])
        history.append({"epoch": epoch, "val": val})
        if val["dice"] > best:
            best, best_epoch, best_state = val["dice"], epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= options["patience"]:
            break
    net.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "epochs_run": len(history), "best_val_dice": best, "history": history}


def segment_trial(model: str | Path, parts: dict[str, Samples], *, seed: int, fraction: float, options: dict,
                  speed: Any) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    keep = subsample(np.arange(len(parts["train"])), fraction, seed=seed)
    unet, cfg, folder = build_unet(model, in_chans=options["in_chans"], progress=options["progress"])
    # evaluation transforms for training too: an augmentation would have to move the mask with the image
    transform = build_transform(folder, cfg, image_size=options["image_size"], in_chans=options["in_chans"])
    transforms = (transform, transform)
    net = speed.prepare(unet)
    run = fit_unet(net, {**parts, "train": parts["train"].subset(keep)}, transforms, speed, options, seed)
    test = evaluate(net, parts["test"], transforms[1], speed, options["batch_size"])
    return {**run, "seed": seed, "test": test, "train_indices": keep.tolist()}


def segment(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
            label_fraction: float = 1.0, trials: int = 1, seed: int = 0, epochs: int = 50, patience: int = 10,
            lr: float = 1e-3, batch_size: int = 8, image_size: int | None = None, in_chans: int = 3,
            device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train and test a U-Net with ``model`` as encoder ``trials`` times; Dice and IoU per trial and summary.

    ``image_size`` must be a multiple of 32 (the U-Net's five down-samplings). Results go to ``segment.json``.

    Example:
        >>> segment("moco-v2", read_segmentation_pairs("lungs/images", "lungs/masks"), trials=3, out_dir="runs/seg")
    """
    from ..runtime import Speed

    speed = Speed.fast(device)
    parts, index = make_splits(data, seed=seed)
    options = {"in_chans": in_chans, "image_size": image_size, "progress": progress, "epochs": epochs,
               "patience": patience, "lr": lr, "batch_size": batch_size}
    with speed.numerics():
        runs = [segment_trial(model, parts, seed=seed + t, fraction=label_fraction, options=options, speed=speed)
                for t in range(trials)]
    return report_trials("segmentation", model, parts, index, runs, seed=seed, label_fraction=label_fraction,
                         metrics=("dice", "iou"), out_dir=out_dir,
                         filename="segment.json")
