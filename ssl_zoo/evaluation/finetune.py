"""Full fine-tuning (BenchmarkTransferLearning protocol): every layer trains, a new linear head on top.

Adam (lr 2e-4); BCE-with-logits for binary (one logit) and multilabel, cross-entropy for multiclass;
``ReduceLROnPlateau(factor=0.5, patience=5)`` and early stopping (``patience`` epochs without improvement, default
10) both on the validation metric (AUC, or accuracy where AUC is undefined); the best epoch's weights are scored on
the test split. Trial ``t`` uses seed ``seed + t`` for the label-fraction subset, the head initialisation and the
batch order; the splits use ``seed``. On CUDA the loop runs with ``runtime.Speed.fast()`` (bf16 autocast,
channels_last, cuDNN benchmark, pinned memory and workers, optional ``torch.compile``); launched by ``torchrun``,
it trains with DDP (``parallel``) and rank 0 writes the results.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DatasetError
from ..runtime import Distributed
from . import parallel
from ..progress import bar
from .backbone import load_backbone
from .data import ImageDataset, Samples
from .metrics import classification_metrics, primary_metric
from .preprocess import build_transform
from .report import report_trials
from .splits import label_fraction as subsample
from .splits import make_splits


def loss_function(task: str) -> Callable:
    """Cross-entropy (multiclass, int targets) or BCE-with-logits (binary: one logit; multilabel)."""
    import torch.nn.functional as F

    if task == "multiclass":
        return lambda logits, y: F.cross_entropy(logits.float(), y.long())
    return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float().reshape(y.shape), y)


def to_scores(logits: Any, task: str) -> Any:
    """Probabilities from logits: softmax (multiclass), sigmoid (binary: a vector; multilabel)."""
    if task == "multiclass":
        return logits.float().softmax(1)
    probs = logits.float().sigmoid()
    return probs[:, 0] if task == "binary" else probs


def predict(net: Any, samples: Samples, transform: Callable, speed: Any, batch_size: int) -> np.ndarray:
    """Scores of ``net`` on ``samples`` in eval mode."""
    import torch

    loader = torch.utils.data.DataLoader(ImageDataset(samples, transform), batch_size=batch_size,
                                         **speed.loader_kwargs())
    net.eval()
    out = []
    with torch.inference_mode(), speed.autocast():
        for images, _ in loader:
            out.append(to_scores(net(speed.batch(images)), samples.task).cpu())
    return torch.cat(out).numpy()


def train_epoch(net: Any, loader: Any, optimizer: Any, loss_fn: Callable, speed: Any) -> float:
    """One pass over ``loader``; the mean training loss."""
    net.train()
    total, count = 0.0, 0
    for images, targets in loader:
        with speed.autocast():
            logits = net(speed.batch(images))
        loss = loss_fn(logits, targets.to(speed.device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total, count = total + float(loss.detach()) * len(images), count + len(images)
    return total / max(count, 1)


def train_loader(samples: Samples, transform: Callable, speed: Any, batch_size: int, seed: int,
                 dist_info: Distributed = Distributed()) -> Any:
    """Shuffled (seeded) training batches; under torchrun, this process's shard."""
    import torch

    if len(samples) < 2:
        raise DatasetError("fewer than 2 training images after subsampling; use a larger --label-fraction")
    dataset = ImageDataset(samples, transform)
    shard = parallel.sampler(dataset, dist_info, seed)
    count = len(shard) if shard is not None else len(samples)
    # drop a last batch of one image: batch norm cannot train on it
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shard is None, sampler=shard,
                                       generator=torch.Generator().manual_seed(seed),
                                       drop_last=count % batch_size == 1, **speed.loader_kwargs())


def fit(net: Any, parts: dict[str, Samples], transforms: tuple[Callable, Callable], speed: Any, *, seed: int,
        epochs: int, patience: int, lr: float, batch_size: int, progress: bool,
        dist_info: Distributed = Distributed()) -> dict[str, Any]:
    """Train with early stopping on the validation metric; ``net`` ends with its best epoch's weights."""
    import torch

    task = parts["train"].task
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=5)
    loader = train_loader(parts["train"], transforms[0], speed, batch_size, seed, dist_info)
    train_net = parallel.wrap(net, speed, dist_info)
    loss_fn, best, best_epoch, best_state, history = loss_function(task), -np.inf, 0, None, []
    for epoch in bar(range(epochs), progress=progress, desc="epochs"):
        if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # a new shuffle of the shards each epoch
        loss = train_epoch(train_net, loader, optimizer, loss_fn, speed)
        val = classification_metrics(task, parts["val"].class_ids(),
                                     predict(net, parts["val"], transforms[1], speed, batch_size))
        score = parallel.agree(primary_metric(val), dist_info)
        scheduler.step(score)
        history.append({"epoch": epoch, "train_loss": loss, "val": val, "lr": optimizer.param_groups[0]["lr"]})
        if score > best:
            best, best_epoch, best_state = score, epoch, copy.deepcopy(net.state_dict())
        elif epoch - best_epoch >= patience:
            break
    net.load_state_dict(best_state)
    return {"best_epoch": best_epoch, "epochs_run": len(history), "best_val": best, "history": history}


def finetune_trial(model: str | Path, parts: dict[str, Samples], *, trial_seed: int, fraction: float,
                   options: dict[str, Any], speed: Any) -> dict[str, Any]:
    """One trial: subsample, load fresh weights, fit, score on test."""
    import torch

    torch.manual_seed(trial_seed)
    keep = subsample(np.arange(len(parts["train"])), fraction, seed=trial_seed)
    trial_parts = {**parts, "train": parts["train"].subset(keep)}
    in_chans, size, progress = options["in_chans"], options["image_size"], options["progress"]
    backbone = load_backbone(model, in_chans=in_chans, num_classes=parts["train"].num_outputs, progress=progress)
    cfg = backbone.model.pretrained_cfg
    transforms = tuple(build_transform(backbone.folder, cfg, image_size=size, in_chans=in_chans, train=t)
                       for t in (True, False))
    net = speed.prepare(backbone.model)
    run = fit(net, trial_parts, transforms, speed, seed=trial_seed, epochs=options["epochs"],
              patience=options["patience"], lr=options["lr"], batch_size=options["batch_size"], progress=progress,
              dist_info=options["dist"])
    test = classification_metrics(parts["test"].task, parts["test"].class_ids(),
                                  predict(net, parts["test"], transforms[1], speed, options["batch_size"]))
    return {**run, "seed": trial_seed, "test": test, "train_indices": keep.tolist()}


def finetune(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
             label_fraction: float = 1.0, trials: int = 1, seed: int = 0, epochs: int = 100, patience: int = 10,
             lr: float = 2e-4, batch_size: int = 32, image_size: int | None = None, in_chans: int = 3,
             device: str | None = None, compile: bool = False, progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``model`` on ``data`` ``trials`` times; test metrics per trial and their summary.

    Args:
        model: A registry name or a model folder.
        data: ``Samples`` (split here with ``seed``) or the dataset's own splits.
        out_dir: Where ``finetune.json`` and ``splits.json`` go (nothing written when None).
        label_fraction: Share of the training split used (0 < f <= 1); validation and test stay whole.
        trials: Independent runs (seed + t).
        seed: Seed of the splits and of trial 0.
        epochs: At most this many epochs.
        patience: Early stopping after this many epochs without a better validation metric.
        lr: Adam learning rate.
        batch_size: Images per step.
        image_size: Override the registry preprocessing with a square resize to this size.
        in_chans: Model input channels.
        device: Default CUDA when present.
        compile: ``torch.compile`` the model (CUDA).
        progress: Progress bars on stderr.

    Returns:
        ``{"protocol": "finetune", ..., "trials": [...], "summary": {"accuracy": ..., "auc": ...}}``.

    Example:
        >>> finetune("moco-v2", read_npz("breastmnist.npz"), label_fraction=0.1, trials=5, out_dir="runs/ft")
    """
    from ..runtime import Speed, distributed_session

    speed = Speed.fast(device, compile=compile)
    parts, index = make_splits(data, seed=seed)
    with speed.numerics(), distributed_session(speed.device) as dist_info:
        options = {"in_chans": in_chans, "image_size": image_size, "progress": progress and dist_info.is_main,
                   "epochs": epochs, "patience": patience, "lr": lr, "batch_size": batch_size, "dist": dist_info}
        runs = [finetune_trial(model, parts, trial_seed=seed + t, fraction=label_fraction, options=options,
                               speed=speed) for t in range(trials)]
    return report_trials("finetune", model, parts, index, runs, seed=seed, label_fraction=label_fraction,
                         metrics=("accuracy", "auc"), out_dir=out_dir if dist_info.is_main else None,
                         filename="finetune.json")
