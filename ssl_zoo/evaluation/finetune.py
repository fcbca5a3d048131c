"""Full fine-tuning under a preset: every layer trains with a new linear head on top.

Preset ``ssl-transfer`` (the medical fork's ``finetune.py -e``): a step budget of 5000 SGD steps (momentum 0.9,
Nesterov, lr 1e-2, weight decay 1e-8), ``CosineAnnealingLR(T_max=steps)`` stepped every step, batch 64, training
``RandomResizedCrop(224, bicubic)`` + flip; every 200 steps the validation score (accuracy, or the dataset's metric)
is checked: the first check sets the best, a lower score counts one, an equal or higher one resets the count and
keeps the weights; at 3 counts training stops and the best weights come back. Without early stopping the final
training uses train + val (upstream ``trainval``). ``search`` runs the upstream grid first: ``lr`` in
``logspace(-4, -1, grid_size)`` descending x ``wd`` in ``[0] + logspace(-6, -3, grid_size)``, each pair trained as
``(lr, wd / lr)`` on train for the full budget and scored on val; the strictly best pair wins.

Preset ``benchmark-transfer`` (BenchmarkTransferLearning V1): epochs (at most 1000), Adam lr 2e-4, batch 32,
``ReduceLROnPlateau(mode="min", factor=0.5, patience=patience // 2, threshold=1e-4)`` on the validation loss,
selection and early stopping on the validation LOSS (improvement = strictly lower; stop when more than 10 epochs
pass without one), the best epoch's weights tested; training adds ``RandomRotation(7)``; validation
``Resize((256, 256))`` + ``CenterCrop(224)``; test ``TenCrop(224)`` with the probabilities averaged over the crops;
the std over trials is the population std (``np.std``).

Losses: cross-entropy (multiclass), BCE-with-logits on one logit (binary) or per label (multilabel). Upstream bugs
fixed: the medical fork keeps ``best_state_dict = model.state_dict()``, a live reference, so its "restored" best
weights were the last ones (here a copy); it casts targets to int, turning label-smoothed soft labels into 0 (here
multilabel targets stay float); MAGICAL selects CheXpert models on the test set and drops the tail of its val/test
loaders (here selection uses the validation split and every image is scored); BenchmarkTransferLearning's
``--anno_percent`` also shrank the CheXpert/Shenzhen validation and test sets (here ``label_fraction`` subsamples the
training split only, so every fraction is tested on the same images). Trial ``t`` uses seed ``seed + t`` for
the label-fraction subset, the head initialisation and the batch order. On CUDA the loop runs with
``runtime.Speed.fast()``; under ``torchrun`` it trains with DDP and rank 0 writes the results.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import DatasetError
from ..runtime import Distributed
from . import parallel
from ..progress import bar
from .backbone import load_backbone
from .data import ImageDataset, Samples
from .metrics import classification_metrics
from .paper_splits import merge, paper_splits
from .finetune_recipe import (EarlyStopping, FinetuneSettings, batches, make_optimizer, make_scheduler, search_grid,
                              selection_key)
from .preprocess import normalization_for, paper_transform
from .presets import resolve
from .report import report_trials
from .splits import check_run, label_fraction as subsample

def loss_function(task: str) -> Callable:
    """Cross-entropy (multiclass, int targets) or BCE-with-logits (binary: one logit; multilabel: float targets)."""
    import torch.nn.functional as F

    if task == "multiclass":
        return lambda logits, y: F.cross_entropy(logits.float(), y.long())
    return lambda logits, y: F.binary_cross_entropy_with_logits(logits.float().reshape(y.shape), y.float())


def to_scores(logits: Any, task: str) -> Any:
    """Probabilities from logits: softmax (multiclass), sigmoid (binary: a vector; multilabel)."""
    if task == "multiclass":
        return logits.float().softmax(1)
    probs = logits.float().sigmoid()
    return probs[:, 0] if task == "binary" else probs


def score_loss(task: str, targets: np.ndarray, scores: np.ndarray) -> float:
    """The mean training loss of probabilities ``scores`` (cross-entropy, or binary cross-entropy per output)."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 1e-12, 1 - 1e-12)
    if task == "multiclass":
        return float(-np.log(p[np.arange(len(p)), np.asarray(targets, dtype=np.int64)]).mean())
    y = np.asarray(targets, dtype=np.float64).reshape(p.shape)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def predict(net: Any, samples: Samples, transform: Callable, speed: Any, batch_size: int) -> np.ndarray:
    """Scores of ``net`` on ``samples`` in eval mode; a ten-crop transform's probabilities are averaged per image."""
    import torch

    loader = torch.utils.data.DataLoader(ImageDataset(samples, transform), batch_size=batch_size,
                                         **speed.loader_kwargs())
    net.eval()
    out = []
    with torch.inference_mode(), speed.autocast():
        for images, _ in loader:
            crops = images.shape[1] if images.dim() == 5 else 1
            scores = to_scores(net(speed.batch(images.flatten(0, 1) if crops > 1 else images)), samples.task)
            out.append(scores.reshape(len(images), crops, *scores.shape[1:]).mean(1).cpu())
    return torch.cat(out).numpy()


def evaluate(net: Any, samples: Samples, transform: Callable, speed: Any, batch_size: int) -> dict[str, float]:
    """Test metrics of ``net`` on ``samples`` plus ``loss`` (the training loss on them)."""
    return score_metrics(samples, predict(net, samples, transform, speed, batch_size))


def score_metrics(samples: Samples, scores: np.ndarray) -> dict[str, float]:
    """``classification_metrics`` of ``scores`` on ``samples`` plus ``loss`` (the training loss on them)."""
    metrics = classification_metrics(samples.task, samples.class_ids(), scores)
    return {**metrics, "loss": score_loss(samples.task, samples.targets, scores)}


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


def train_step(net: Any, images: Any, targets: Any, optimizer: Any, loss_fn: Callable, speed: Any) -> Any:
    """One optimiser step on a batch; the (detached) loss."""
    net.train()
    with speed.autocast():
        logits = net(speed.batch(images))
    loss = loss_fn(logits, targets.to(speed.device, non_blocking=True))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_epoch(net: Any, loader: Any, optimizer: Any, loss_fn: Callable, speed: Any) -> float:
    """One pass over ``loader`` (``train_step`` per batch); the mean training loss (the GPU benchmark's unit)."""
    total, count = 0.0, 0
    for images, targets in loader:
        total, count = total + float(train_step(net, images, targets, optimizer, loss_fn, speed)) * len(images), \
            count + len(images)
    return total / max(count, 1)


def fit(net: Any, parts: dict[str, Samples], transforms: tuple[Callable, Callable], speed: Any, *, seed: int,
        settings: FinetuneSettings, lr: float, weight_decay: float, validate: bool, progress: bool,
        dist_info: Distributed = Distributed()) -> dict[str, Any]:
    """Train ``net`` on ``parts["train"]``; with ``validate``, check ``parts["val"]`` and stop early as the preset says.

    Returns:
        ``{"stopped_at_step", "best_step", "best_val", "steps_run", "history"}``.
    """
    s, task = settings, parts["train"].task
    loader = train_loader(parts["train"], transforms[0], speed, s.batch_size, seed, dist_info)
    optimizer = make_optimizer(net, s, lr, weight_decay)
    scheduler = make_scheduler(optimizer, s, s.steps if s.steps > 0 else s.epochs * len(loader))
    train_net, loss_fn, stopper = parallel.wrap(net, speed, dist_info), loss_function(task), EarlyStopping(s)
    key, history, stopped, step = selection_key(s, parts["train"]), [], None, 0
    total = s.steps if s.steps > 0 else s.epochs * len(loader)
    for step, epoch_ends, images, targets in bar(batches(loader, s), progress=progress, desc="steps", total=total):
        loss = train_step(train_net, images, targets, optimizer, loss_fn, speed)
        if s.schedule == "cosine":
            scheduler.step()
        check = (step % s.eval_every == 0) if s.steps > 0 else epoch_ends
        if not (validate and check and (s.early_stopping or s.schedule == "plateau")):
            continue
        val = evaluate(net, parts["val"], transforms[1], speed, s.batch_size)
        value = parallel.agree(-val["loss"] if key == "loss" else val[key], dist_info)
        if s.schedule == "plateau":
            scheduler.step(val["loss"])
        history.append({"step": step, "train_loss": float(loss), "val": val,
                        "lr": optimizer.param_groups[0]["lr"]})
        if s.early_stopping and stopper.update(value, net, step):
            stopped = step
            break
    if stopper.state is not None and (stopped is not None or s.restore == "best"):
        net.load_state_dict(stopper.state)
    return {"stopped_at_step": stopped, "best_step": stopper.best_check, "best_val": stopper.best,
            "selected_by": key, "steps_run": step, "history": history}


def build_net(model: str | Path, parts: dict[str, Samples], options: dict[str, Any], speed: Any) -> tuple[Any, tuple]:
    """Fresh pre-trained weights with a new head, and the (train, eval) transforms; the test transform is third."""
    from ..modelfolder.files import read_config

    s, in_chans = options["settings"], options["in_chans"]
    backbone = load_backbone(model, in_chans=in_chans, num_classes=parts["train"].num_outputs,
                             progress=options["progress"])
    config = read_config(backbone.folder)
    transforms = (paper_transform(config, s, in_chans=in_chans, augment=s.augment),
                  paper_transform(config, s, in_chans=in_chans),
                  paper_transform(config, s, in_chans=in_chans, ten_crop=s.ten_crop))
    return speed.prepare(backbone.model), transforms


def run_config(model: str | Path, parts: dict[str, Samples], options: dict[str, Any], speed: Any, *, seed: int,
               lr: float, weight_decay: float, validate: bool) -> tuple[Any, tuple, dict[str, Any]]:
    """One training run from fresh weights (seeded); the trained net, its transforms and the fit record."""
    import torch

    torch.manual_seed(seed)
    net, transforms = build_net(model, parts, options, speed)
    run = fit(net, parts, transforms[:2], speed, seed=seed, settings=options["settings"], lr=lr,
              weight_decay=weight_decay, validate=validate, progress=options["progress"], dist_info=options["dist"])
    return net, transforms, run


def search(model: str | Path, parts: dict[str, Samples], options: dict[str, Any], speed: Any,
           seed: int) -> tuple[tuple[float, float], list[dict]]:
    """The upstream grid: each (lr, wd / lr) trained on train for the whole budget, scored on val; the best pair."""
    s = options["settings"]
    key, best, scores = selection_key(s, parts["train"]), None, []
    plain = {**options, "settings": dataclasses.replace(s, early_stopping=False)}
    for lr, wd in search_grid(s.grid_size):
        net, transforms, _ = run_config(model, parts, plain, speed, seed=seed, lr=lr, weight_decay=wd, validate=False)
        val = evaluate(net, parts["val"], transforms[1], speed, s.batch_size)
        value = -val["loss"] if key == "loss" else val[key]
        scores.append({"lr": lr, "weight_decay": wd, "val": val})
        if best is None or value > best[0]:
            best = (value, (lr, wd))
    return best[1], scores


def finetune_trial(model: str | Path, parts: dict[str, Samples], *, trial_seed: int, fraction: float,
                   options: dict[str, Any], speed: Any) -> dict[str, Any]:
    """One trial: subsample, (search,) train from fresh weights, score on test (per-image scores kept)."""
    s = options["settings"]
    keep = subsample(np.arange(len(parts["train"])), fraction, seed=trial_seed, groups=parts["train"].groups)
    trial_parts = {**parts, "train": parts["train"].subset(keep)}
    (lr, wd), grid = (s.lr, s.weight_decay), []
    if s.search:
        (lr, wd), grid = search(model, trial_parts, options, speed, trial_seed)
    if s.steps > 0 and not s.early_stopping:  # upstream trains the final model on trainval when nothing watches val
        trial_parts = {**trial_parts, "train": merge(trial_parts["train"], trial_parts["val"])}
    net, transforms, run = run_config(model, trial_parts, options, speed, seed=trial_seed, lr=lr, weight_decay=wd,
                                      validate=True)
    scores = predict(net, parts["test"], transforms[2], speed, s.batch_size)
    return {**run, "seed": trial_seed, "lr": lr, "weight_decay": wd, "search": grid,
            "test": score_metrics(parts["test"], scores), "test_scores": scores.astype(np.float32),
            "train_indices": keep.tolist()}


def finetune(model: str | Path, data: Samples | dict[str, Samples], *, out_dir: str | Path | None = None,
             label_fraction: float = 1.0, trials: int = 1, seed: int = 0, preset: str | None = None,
             in_chans: int = 3, device: str | None = None, compile: bool = False, progress: bool = True,
             **overrides: Any) -> dict[str, Any]:
    """Fine-tune ``model`` on ``data`` ``trials`` times under a preset (default ssl-transfer); test metrics per trial.

    Args:
        model: A registry name, ``hf-hub:`` reference or model folder.
        data: ``Samples`` (test 20 % with ``seed``, val drawn as ssl-transfer) or the dataset's own splits.
        out_dir: Where ``finetune.json`` and ``splits.json`` go (nothing written when None).
        label_fraction: Share of the training split used (0 < f <= 1); validation and test stay whole.
        trials: Independent runs (seed + t).
        seed: Seed of the splits and of trial 0.
        preset: "ssl-transfer", "benchmark-transfer", "magical" (any preset with a ``[finetune]`` table).
        in_chans: Model input channels.
        device: Default CUDA when present.
        compile: ``torch.compile`` the model (CUDA).
        progress: Progress bars on stderr.
        **overrides: Single ``FinetuneSettings`` fields (``steps=``, ``lr=``, ``search=True`` ...); ``epochs``
            without ``steps`` trains by epochs (``steps=0``).

    Returns:
        ``{"protocol": "finetune", ..., "trials": [...], "summary": {...}, "preset": {...}}``; with ``out_dir``
        each trial names its ``test_scores-trial-<t>.npy`` (per-image test probabilities, which ``compare`` pairs).

    Raises:
        UnknownPresetError / PresetError: A bad preset name or override.

    Example:
        >>> finetune("moco-v2", read_npz("breastmnist.npz"), preset="benchmark-transfer", trials=5, out_dir="runs/ft")
    """
    check_run(data, label_fraction=label_fraction, trials=trials)  # before any model is loaded
    from ..modelfolder.files import read_config
    from ..resolve import resolve_folder
    from ..runtime import Speed, distributed_session

    resolved = resolve("finetune", preset, **overrides)
    if overrides.get("epochs") is not None and overrides.get("steps") is None and resolved.settings.steps > 0:
        # an epoch budget asked for under a step-budget preset: train by epochs (both recorded as overridden)
        resolved = resolve("finetune", preset, **{**overrides, "steps": 0})
    speed = Speed.fast(device, compile=compile)
    parts, index = paper_splits(data, seed=seed)
    with speed.numerics(), distributed_session(speed.device) as dist_info:
        options = {"in_chans": in_chans, "progress": progress and dist_info.is_main, "settings": resolved.settings,
                   "dist": dist_info}
        folder = resolve_folder(model, progress=options["progress"])  # resolved once; each run loads fresh weights
        runs = [finetune_trial(folder, parts, trial_seed=seed + t, fraction=label_fraction, options=options,
                               speed=speed) for t in range(trials)]
    extra = {"preset": resolved.record(),
             "normalization": normalization_for(resolved.settings.normalization, read_config(folder), in_chans)}
    return report_trials("finetune", model, parts, index, runs, seed=seed, label_fraction=label_fraction,
                         metrics=("accuracy", "mean_per_class_accuracy", "auc"),
                         out_dir=out_dir if dist_info.is_main else None, filename="finetune.json", extra=extra,
                         ddof=0 if resolved.settings.population_std else 1)
