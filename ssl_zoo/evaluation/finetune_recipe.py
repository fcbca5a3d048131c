"""The training recipe of a fine-tune preset: its settings, optimiser, learning-rate schedule, stopping rule, search
grid and batch budget (the loop that uses them is ``finetune.fit``)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterator

from ..errors import PresetError
from .data import Samples
from .metrics import SCORES, dataset_metric
from .preprocess import ImageSettings

SELECT_ON = (*SCORES, "loss", "dataset")


@dataclass(frozen=True)
class FinetuneSettings(ImageSettings):
    """Settings of fine-tuning (defaults: the ssl-transfer medical fork's ``finetune.py``).

    Attributes:
        steps: Step budget (> 0), or 0 to train by ``epochs``.
        epochs: Epoch budget when ``steps`` is 0.
        batch_size: Images per step.
        optimizer: "sgd" (momentum 0.9, Nesterov) or "adam".
        lr: Learning rate.
        weight_decay: The optimiser's weight decay.
        schedule: "cosine" (``CosineAnnealingLR(T_max=steps)`` per step), "plateau" (``ReduceLROnPlateau`` on the
            validation loss, factor 0.5, patience ``patience // 2``, threshold 1e-4) or "constant".
        early_stopping: Check the validation score during training and stop when it stalls.
        eval_every: Steps between checks with a step budget (checks are per epoch otherwise).
        patience: Checks without improvement that stop training.
        stop_rule: "reaches" (stop when the count reaches ``patience``) or "exceeds" (when it passes it).
        ties_improve: An equal score counts as an improvement (ssl-transfer) or not (BenchmarkTransfer's loss).
        restore: "on-stop" (best weights back when stopped early) or "best" (always test the best check's weights).
        select_on: "accuracy", "mean_per_class_accuracy", "auc", "loss", or "dataset" (``Samples.metric``, else
            accuracy; AUC for multilabel).
        search: Run the upstream lr / wd grid before the final training.
        grid_size: Values per axis of the grid.
        augment: Training augmentation: "rrc-flip", "rrc-flip-rot7" or "none".
        ten_crop: Test on ``TenCrop`` with averaged probabilities.
        population_std: Report ``np.std`` (ddof 0) over trials instead of the sample std.
    """

    steps: int = 5000
    epochs: int = 1000
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 1e-2
    weight_decay: float = 1e-8
    schedule: str = "cosine"
    early_stopping: bool = True
    eval_every: int = 200
    patience: int = 3
    stop_rule: str = "reaches"
    ties_improve: bool = True
    restore: str = "on-stop"
    select_on: str = "dataset"
    search: bool = False
    grid_size: int = 2
    augment: str = "rrc-flip"
    ten_crop: bool = False
    population_std: bool = False


class EarlyStopping:
    """The stopping rule: the best score so far, the count of checks without improvement, the best weights."""

    def __init__(self, settings: FinetuneSettings) -> None:
        self.settings, self.best, self.count, self.state, self.best_check = settings, None, 0, None, None

    def update(self, score: float, net: Any, check: int) -> bool:
        """Record the check's ``score`` (higher is better); True when training should stop."""
        improved = self.best is None or score > self.best or (self.settings.ties_improve and score == self.best)
        if improved:
            self.best, self.count, self.best_check = score, 0, check
            self.state = copy.deepcopy(net.state_dict())  # a copy: upstream kept a live reference (bug)
            return False
        self.count += 1
        limit = self.settings.patience
        return self.count >= limit if self.settings.stop_rule == "reaches" else self.count > limit


def search_grid(grid_size: int) -> list[tuple[float, float]]:
    """The upstream ``(lr, wd / lr)`` pairs: lr in ``logspace(-4, -1, g)`` descending, wd in ``[0] + logspace(-6, -3, g)``."""
    import torch

    lrs = torch.logspace(-4, -1, grid_size).flip(dims=(0,))
    wds = torch.cat([torch.zeros(1), torch.logspace(-6, -3, grid_size)])
    return [(lr.item(), (wd / lr).item()) for lr in lrs for wd in wds]


def selection_key(settings: FinetuneSettings, samples: Samples) -> str:
    """The validation value checks compare: the setting, or the dataset's metric where it says "dataset"."""
    if settings.select_on not in SELECT_ON:
        raise PresetError(f"finetune select_on {settings.select_on!r} is not one of {SELECT_ON}")
    if settings.select_on != "dataset":
        return settings.select_on
    return dataset_metric(samples.task, samples.metric)


def make_optimizer(net: Any, settings: FinetuneSettings, lr: float, weight_decay: float) -> Any:
    """SGD (momentum 0.9, Nesterov) or Adam, as the preset says."""
    import torch

    if settings.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if settings.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    raise PresetError(f"finetune optimizer {settings.optimizer!r} is not one of sgd, adam")


def make_scheduler(optimizer: Any, settings: FinetuneSettings, total_steps: int) -> Any:
    """The preset's learning-rate schedule (None for "constant")."""
    import torch

    if settings.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if settings.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                          patience=settings.patience // 2, threshold=1e-4)
    if settings.schedule == "constant":
        return None
    raise PresetError(f"finetune schedule {settings.schedule!r} is not one of cosine, plateau, constant")


def batches(loader: Any, settings: FinetuneSettings) -> Iterator[tuple[int, bool, Any, Any]]:
    """(step, epoch_ends, images, targets) until the step or epoch budget is spent."""
    step = 0
    for epoch in range(settings.epochs if settings.steps <= 0 else 10**9):
        if loader.sampler is not None and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # a new shuffle of the shards each epoch
        last = len(loader) - 1
        for i, (images, targets) in enumerate(loader):
            step += 1
            yield step, i == last, images, targets
            if 0 < settings.steps <= step:
                return
