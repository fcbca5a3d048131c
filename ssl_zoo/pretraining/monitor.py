"""Watching a pre-training run: a validation split, its loss every epoch, an optional labelled probe, the
checkpoint kept, early stopping, and the metrics written as CSV / TensorBoard (/ Weights & Biases).

- ``split_validation``: a seeded share of the unlabelled samples, whole groups (volumes, patients) at a time.
- ``validation_loss``: the method's training loss under ``torch.no_grad()`` in eval mode (BN running statistics
  are used, not updated) on the validation split, with fixed per-sample augmentation seeds, so epochs compare.
- ``Monitor``: what the loop calls at each logged interval and at each epoch's end: writes ``metrics.csv`` and
  TensorBoard event files in the run folder, keeps ``best.pt`` (the method's state at the lowest validation
  loss) when the method selects that way, and says when to stop early.
"""

from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import MonitorSetupError
from ..store.atomic import write_atomic
from .data import Sample
from .metrics import MetricsLog

BEST = "best.pt"
SELECT_CHOICES = ("last", "best-validation")
VALIDATION_SEED = 7_919  # the validation views' seed: the same views every epoch, unrelated to training's


@dataclass(frozen=True)
class MonitorSettings:
    """How a run is watched.

    Attributes:
        val_fraction: Share of the groups (volumes, patients, else images) held out for validation; 0: none.
        select: "last" or "best-validation" (the output model is the state at the lowest validation loss);
            None: the method's own (``for_method``).
        early_stop: Stop after this many epochs without a lower validation loss; None: the method's own.
        probe_data: A small labelled set (class folders, CSV, .npz) for a k-NN / linear-probe accuracy.
        probe: "knn" (weighted k-NN, k 20, T 0.07 as solo-learn) or "linear" (logistic regression).
        probe_every: Epochs between probe evaluations.
        wandb: Also log to Weights & Biases (needs ``wandb`` installed).
        why: Why the method selects / stops so (the paper), for the card.
    """

    val_fraction: float = 0.05
    select: str | None = None
    early_stop: int | None = None
    probe_data: str | None = None
    probe: str = "knn"
    probe_every: int = 1
    wandb: bool = False
    why: str = ""

    def __post_init__(self) -> None:
        if self.select is not None and self.select not in SELECT_CHOICES:
            raise MonitorSetupError(f"select must be one of {SELECT_CHOICES}, got {self.select!r}")
        if self.probe not in ("knn", "linear"):
            raise MonitorSetupError(f"probe must be 'knn' or 'linear', got {self.probe!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise MonitorSetupError(f"val_fraction {self.val_fraction} is outside [0, 1): give e.g. 0.05")
        if type(self.probe_every) is not int or self.probe_every < 1:
            raise MonitorSetupError(f"probe_every {self.probe_every!r} must be a whole number >= 1: "
                                    "give e.g. --monitor-every 1")
        if self.early_stop is not None and (type(self.early_stop) is not int or self.early_stop < 0):
            raise MonitorSetupError(f"early_stop {self.early_stop!r} must be a whole number of epochs >= 0 "
                                    "(0: never): give e.g. --early-stop 30")


def for_method(watch: MonitorSettings | None, method: Any) -> MonitorSettings:
    """``watch`` with the method's ``select`` / ``early_stop`` (its paper's) wherever ``watch`` leaves them None."""
    watch = watch or MonitorSettings()
    select = watch.select or getattr(method, "select", None) or "last"
    early_stop = watch.early_stop if watch.early_stop is not None else getattr(method, "early_stop", None)
    kept = "the checkpoint with the lowest validation loss" if select == "best-validation" else "the last checkpoint"
    why = watch.why or (f"asked for (select {select})" if watch.select else f"the {method.name} paper keeps {kept}")
    return replace(watch, select=select, early_stop=early_stop, why=why)


def group_of(index: int, sample: Sample) -> str:
    """The group a sample must not be separated from: its patient, else its volume, else itself."""
    if sample.group:
        return f"group:{sample.group}"
    return f"volume:{sample.volume}" if sample.volume >= 0 else f"image:{index}"


def split_validation(samples: list[Sample], fraction: float, *, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(training, validation) samples: ``floor(fraction * groups)`` whole groups drawn by a seeded permutation.

    Example:
        >>> train, val = split_validation(samples, 0.05, seed=0)
    """
    groups = [group_of(i, s) for i, s in enumerate(samples)]
    names = sorted(set(groups))
    held = set(np.random.default_rng(seed).permutation(len(names))[: int(fraction * len(names))].tolist())
    held_names = {names[i] for i in held}
    train = [s for s, g in zip(samples, groups) if g not in held_names]
    val = [s for s, g in zip(samples, groups) if g in held_names]
    return train, val


@torch.no_grad()
def validation_loss(forward: Callable[[dict], torch.Tensor], dataset, batches, *, world: int = 1,
                    loader_kwargs: dict | None = None, device: torch.device | str = "cpu") -> float:
    """The mean of ``forward(batch)`` (the method's loss) over this rank's validation ``batches``.

    Args:
        forward: The method's loss of one batch.
        dataset: The validation views.
        batches: This rank's batch sampler over ``dataset`` (the method's, with fixed seeds), or None when
            the split has fewer images than there are processes.

    Under DDP every rank runs the same number of batches (collectives inside the loss stay matched) and the
    result is averaged over ranks. The sum stays on ``device``: one read-back per validation, not per batch.

    Raises:
        MonitorSetupError: When the split has fewer images than there are processes.
    """
    if batches is None:
        raise MonitorSetupError(f"the validation split has {len(dataset)} images for {world} processes: "
                                "raise --val-fraction or pass --val-fraction 0")
    loader = DataLoader(dataset, batch_sampler=batches, generator=torch.Generator(), **(loader_kwargs or {}))
    total = torch.zeros(2, dtype=torch.float64, device=device)
    for item in loader:
        total[0] += forward(item).detach().double()
        total[1] += 1
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(total)
    return float(total[0] / total[1])


@dataclass
class MonitorState:
    """What a resumed run needs to continue watching: the validation history and the best epoch so far."""

    validation: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) per epoch
    probe: list[tuple[int, float]] = field(default_factory=list)
    best_step: int = -1
    best_loss: float = math.inf
    stale_epochs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"validation": [list(v) for v in self.validation], "probe": [list(v) for v in self.probe],
                "best_step": self.best_step, "best_loss": self.best_loss, "stale_epochs": self.stale_epochs}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "MonitorState":
        if not data:
            return cls()
        return cls([(int(s), float(v)) for s, v in data["validation"]], [(int(s), float(v)) for s, v in data["probe"]],
                   int(data["best_step"]), float(data["best_loss"]), int(data["stale_epochs"]))


class Monitor:
    """What the loop calls: ``log`` at each logged interval, ``end_epoch`` after each epoch, ``finish`` at the end.

    Args:
        settings: How to watch.
        run_dir: The run folder (``metrics.csv``, ``tensorboard/``, ``best.pt``).
        validation: The validation views (a ``ViewDataset``), or None without a validation split.
        probe: The resized ``--monitor`` set, or None.
        is_main: Whether this process writes files.
    """

    def __init__(self, settings: MonitorSettings, run_dir: Path, *, validation=None, probe=None,
                 is_main: bool = True):
        self.settings, self.run_dir, self.validation, self.probe = settings, run_dir, validation, probe
        self.is_main = is_main
        self.state = MonitorState()
        self.log_file: MetricsLog | None = None
        self.stopped_early = False
        if settings.select == "best-validation" and validation is None and is_main:
            print(f"note: {settings.select} selection needs a validation split, and this run has none "
                  "(too few images for --val-fraction): the output is the last checkpoint", file=sys.stderr)

    def start(self, *, resume_step: int | None = None, state: dict[str, Any] | None = None,
              config: dict[str, Any] | None = None) -> None:
        """Open the metric files (truncated to ``resume_step`` when resuming) and restore the history."""
        self.state = MonitorState.from_dict(state)
        if self.is_main:
            self.log_file = MetricsLog(self.run_dir, resume_step=resume_step, wandb=self.settings.wandb,
                                       config=config)

    def log(self, step: int, epoch: float, losses: list[float], lr: float, images_per_s: float) -> None:
        """One row for a logged interval: its mean training loss, the learning rate and the speed."""
        if self.log_file is not None and losses:
            self.log_file.write(step, epoch, loss=sum(losses) / len(losses), lr=lr, images_per_s=images_per_s)

    def end_epoch(self, step: int, epoch: int, loss: Callable[[], float], method: nn.Module,
                  probe: Callable[[], float]) -> bool:
        """Validate, probe, keep the best state; True when early stopping says stop.

        Args:
            step: Steps done.  epoch: The epoch just finished (0-based).
            loss: Computes the validation loss (every process calls it).
            method: The method, whose state ``best.pt`` keeps.
            probe: Computes the probe accuracy (main process only).
        """
        val = loss() if self.validation is not None else None
        accuracy = None
        if self.probe is not None and self.is_main and (epoch + 1) % self.settings.probe_every == 0:
            accuracy = probe()
            self.state.probe.append((step, accuracy))
        if val is not None:
            self._track(step, val, method)
        if self.log_file is not None:
            self.log_file.write(step, float(epoch + 1), val_loss=val, probe_accuracy=accuracy)
        patience = self.settings.early_stop
        self.stopped_early = bool(patience and val is not None and self.state.stale_epochs >= patience)
        return self.stopped_early

    def _track(self, step: int, val: float, method: nn.Module) -> None:
        self.state.validation.append((step, val))
        if val < self.state.best_loss:
            self.state.best_loss, self.state.best_step, self.state.stale_epochs = val, step, 0
            if self.selects_best and self.is_main:
                buffer = io.BytesIO()
                torch.save({k: v.detach().cpu() for k, v in method.state_dict().items()}, buffer)
                write_atomic(self.run_dir / BEST, lambda fh: fh.write(buffer.getbuffer()))
        else:
            self.state.stale_epochs += 1

    @property
    def selects_best(self) -> bool:
        return self.settings.select == "best-validation" and self.validation is not None

    def finish(self, method: nn.Module, steps: int) -> dict[str, Any]:
        """Load the selected state into ``method`` and return what the card says about the watching."""
        if self.log_file is not None:
            self.log_file.close()
        chosen = "last"
        if self.selects_best and (self.run_dir / BEST).is_file():
            method.load_state_dict(torch.load(self.run_dir / BEST, map_location="cpu", weights_only=True))
            chosen = "best-validation"
        return self.record(chosen, steps)

    def record(self, chosen: str, steps: int) -> dict[str, Any]:
        """The card's account: which checkpoint is the output and why, and the validation history."""
        s, state = self.settings, self.state
        step = state.best_step if chosen == "best-validation" else steps
        why = s.why
        if s.select == "best-validation" and chosen == "last":
            why = "no validation split to select by (too few images for the validation fraction)"
        return {"output": chosen, "output_step": step, "why": why, "val_fraction": s.val_fraction,
                "val_images": len(self.validation) if self.validation is not None else 0,
                "best_val_loss": state.best_loss if state.validation else None,
                "early_stop": s.early_stop, "stopped_early": self.stopped_early,
                "validation": [list(v) for v in state.validation], "probe": s.probe if self.probe else None,
                "probe_accuracy": [list(v) for v in state.probe]}
