"""The one training loop of every pre-training method.

bf16 autocast and channels_last on CUDA (``runtime.Speed``), optional ``torch.compile`` of the method's
networks, the recipe's optimisers, schedule and clipping (``optim.py``), atomic resumable checkpoints,
a typed stop on a non-finite loss, a tqdm bar with loss and images/s, single process or torchrun DDP.
The loss is read back from the device only every ``log_every`` steps, so the GPU is not stalled each step.
A ``views`` recipe is drawn on the device from the batch's plain images (``views.py``); a ``Monitor``
validates after each epoch, logs the metrics and may stop the run early (``monitor.py``).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import NonFiniteLossError, ResumeError
from ..progress import bar
from ..runtime import Distributed, Speed
from . import checkpoint
from .base import Method
from .data import ViewDataset
from .optim import Schedule, make_optimizer
from .monitor import VALIDATION_SEED, Monitor, validation_loss
from .probe import probe_accuracy
from .recipes import Recipe
from .views import ViewRecipe, seeded, views_batch


EXTEND_RULE = ("a resumed run with more epochs recomputes the schedule for the new length (warm-up unchanged): "
               "it continues as if planned that long from the start, so the learning rate at the resumed step "
               "rises to that plan's value")


@dataclass(frozen=True)
class LoopSettings:
    """How long and how a method trains: ``epochs``/``batch_size`` as run, everything else from ``recipe``."""

    epochs: int
    batch_size: int
    recipe: Recipe = Recipe()
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    progress: bool = True


@dataclass
class TrainResult:
    """What a finished run reports: the loss of every step, and its speed."""

    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    images: int = 0

    @property
    def final_loss(self) -> float:
        tail = self.losses[-max(1, min(10, len(self.losses) // 10)):]
        return sum(tail) / len(tail) if tail else math.nan

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def train(method: Method, dataset: ViewDataset, run_dir: Path, settings: LoopSettings, speed: Speed,
          dist: Distributed = Distributed(), *, resume: bool = False,
          signature: dict[str, Any] | None = None, views: ViewRecipe | None = None,
          monitor: Monitor | None = None) -> TrainResult:
    """Train ``method`` on ``dataset``, checkpointing into ``run_dir``.

    Args:
        method: The method (random or already initialised networks), on the CPU.
        dataset: Its views of the training data.
        run_dir: Where ``checkpoint.pt`` lives.
        settings: Epochs, batch size (global, over all processes), schedule, clipping.
        speed: Device, precision, memory format, compile, workers.
        dist: This process's place in a torchrun job.
        resume: Continue from ``run_dir/checkpoint.pt``; a larger ``settings.epochs`` extends the run
            (``EXTEND_RULE``).
        signature: Settings a resumed checkpoint must share with this run.
        views: Draw this view recipe on the device from the batch's ``"image"`` (the dataset then yields
            plain images); None: the dataset yields the views.
        monitor: Validates, logs metrics and may stop early; None: none of that.

    Returns:
        The loss history and speed of this run (the history includes resumed steps).

    Raises:
        NonFiniteLossError: When the loss becomes NaN or infinite.
        ResumeError: When ``resume`` finds no matching checkpoint.
    """
    per_rank = settings.batch_size // dist.world_size
    steps_per_epoch = len(method.batch_sampler(dataset.samples, per_rank, seed=settings.seed, epoch=0,
                                               world=dist.world_size))
    total = steps_per_epoch * settings.epochs
    signature = {**(signature or {}), "batch_size": settings.batch_size, "seed": settings.seed,
                 "recipe": _schedule_signature(settings.recipe), "world_size": dist.world_size}
    model, optimizers = _prepare(method, settings, speed, dist)
    state = _Resumed(losses=[], step=0)
    if resume:
        state = _restore(method, optimizers, _load_extendable(run_dir, signature, total))
    if monitor is not None:
        monitor.start(resume_step=state.step if resume else None, state=state.monitor, config=signature)
    schedule = Schedule.of(settings.recipe, settings.epochs, steps_per_epoch)
    run = _Run(method, model, optimizers, speed, dist, settings, run_dir, {**signature, "total": total},
               total, schedule, steps_per_epoch, views, monitor)
    return run.loop(dataset, state, per_rank)


def _schedule_signature(recipe: Recipe) -> dict[str, Any]:
    """The recipe without its run length: what a resumed (or extended) run must keep."""
    return {k: v for k, v in asdict(recipe).items() if k != "epochs"}


def _load_extendable(run_dir: Path, signature: dict[str, Any], total: int) -> dict[str, Any]:
    """The checkpoint for ``signature``; a run may be extended (more steps), never shortened below its step."""
    state = checkpoint.load(run_dir, signature)
    if int(state["step"]) > total:
        raise ResumeError(f"{run_dir / checkpoint.CHECKPOINT} is at step {state['step']}, past the {total} steps "
                          "of --epochs: pass at least the epochs it was run with")
    return state


@dataclass
class _Resumed:
    losses: list[float]
    step: int
    monitor: dict[str, Any] | None = None


def _prepare(method: Method, settings: LoopSettings, speed: Speed, dist: Distributed):
    method.to(speed.device, memory_format=speed.memory_format).train()
    if speed.compile:
        for part in method.fast_parts():
            part.compile()  # in place: state-dict keys stay those of the model folder
    optimizers = [make_optimizer(s) for s in method.optimizers(settings.recipe, settings.batch_size)]
    model: nn.Module = method
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [speed.device.index] if speed.device.type == "cuda" else None
        model = DistributedDataParallel(method, device_ids=ids, find_unused_parameters=method.unused_parameters)
    return model, optimizers


def _restore(method: Method, optimizers: list, state: dict[str, Any]) -> _Resumed:
    method.load_state_dict(state["method"], strict=True)
    for opt, opt_state in zip(optimizers, state["optimizers"], strict=True):
        opt.load_state_dict(opt_state)
    checkpoint.restore_rng(state["rng"])
    return _Resumed(losses=list(state["losses"]), step=int(state["step"]), monitor=state.get("monitor"))


@dataclass
class _Run:
    method: Method
    model: nn.Module
    optimizers: list
    speed: Speed
    dist: Distributed
    settings: LoopSettings
    run_dir: Path
    signature: dict[str, Any]
    total: int
    schedule: Schedule
    steps_per_epoch: int
    views: ViewRecipe | None = None
    monitor: Monitor | None = None

    def loop(self, dataset: ViewDataset, state: _Resumed, per_rank: int) -> TrainResult:
        result = TrainResult(losses=state.losses, steps=state.step)
        pending: list[torch.Tensor] = []
        bar = self._bar(state.step)
        start, step = time.perf_counter(), state.step
        while step < self.total:
            epoch, skip = divmod(step, self.steps_per_epoch)
            batches = self.method.batch_sampler(dataset.samples, per_rank, seed=self.settings.seed, epoch=epoch,
                                                skip=skip, rank=self.dist.rank, world=self.dist.world_size)
            # Its own generator: creating a loader must not draw from the global RNG the methods use.
            loader = DataLoader(dataset, batch_sampler=batches, generator=torch.Generator(),
                                **self.speed.loader_kwargs())
            for batch in loader:
                pending.append(self.step(batch, step))
                step += 1
                bar.update(1)
                result.images += per_rank * self.dist.world_size
                if step % self.settings.log_every == 0 or step == self.total:
                    self._flush(pending, result, step, bar, time.perf_counter() - start)
                stop = step % self.steps_per_epoch == 0 and self._end_epoch(step, per_rank)
                if step % self.settings.checkpoint_every == 0 or step == self.total or stop:
                    self._flush(pending, result, step, bar, time.perf_counter() - start)
                    self.save(step, result.losses)
                if stop:
                    break
            if self.monitor is not None and self.monitor.stopped_early:
                break
        bar.close()
        result.steps, result.seconds = step, time.perf_counter() - start
        return result

    def step(self, batch: dict[str, torch.Tensor], step: int) -> torch.Tensor:
        self.schedule.apply(self.optimizers, step)
        self.method.epoch = step / self.steps_per_epoch
        batch = self.inputs(batch, (self.settings.seed * 1_000_003 + step) * 1_009 + self.dist.rank)
        with self.speed.autocast():
            loss, _parts = self.model(batch, step / max(1, self.total))
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.settings.recipe.clip:  # only where the paper clips (SparK)
            params = [p for opt in self.optimizers for g in opt.param_groups for p in g["params"]]
            nn.utils.clip_grad_norm_(params, self.settings.recipe.clip, foreach=True)
        for opt in self.optimizers:
            opt.step()
        self.method.after_step((step + 1) / max(1, self.total))
        return loss.detach().float()

    def inputs(self, batch: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
        """The batch on the device, its views drawn there if asked (seeded per step and process: a resumed run
        draws the same views, and the processes of a DDP job draw different ones)."""
        if self.views is not None:
            with seeded(self.speed.device, seed):
                batch = views_batch(self.views, batch, device=self.speed.device)
        return {k: self.speed.batch(v) for k, v in batch.items()}

    def _end_epoch(self, step: int, per_rank: int) -> bool:
        """Validation, probe and early stopping after an epoch; True to stop."""
        if self.monitor is None:
            return False
        progress, drawn = step / max(1, self.total), itertools.count(VALIDATION_SEED * 1_009 + self.dist.rank, 1_009)
        validation = self.monitor.validation

        @torch.no_grad()
        def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            with self.speed.autocast():  # the same device views every epoch: seeds count from a fixed start
                return self.method(self.inputs(batch, next(drawn)), progress)[0].float()

        def loss() -> float:
            size = min(per_rank, len(validation) // self.dist.world_size)
            batches = self.method.batch_sampler(validation.samples, size, seed=VALIDATION_SEED, epoch=0,
                                                rank=self.dist.rank, world=self.dist.world_size) if size else None
            self.method.eval()
            try:
                return validation_loss(forward, validation, batches, world=self.dist.world_size,
                                       loader_kwargs=self.speed.loader_kwargs(), device=self.speed.device)
            finally:
                self.method.train()

        def probe() -> float:
            s = self.method.settings
            return probe_accuracy(self.monitor.probe, self.monitor.settings.probe, self.method.encoder(), s.mean,
                                  s.std, self.speed.device)

        return self.monitor.end_epoch(step, step // self.steps_per_epoch - 1, loss, self.method, probe)

    def _flush(self, pending: list[torch.Tensor], result: TrainResult, step: int, bar, seconds: float) -> None:
        if not pending:
            return
        values = torch.stack(pending).tolist()  # one device sync for the whole interval
        pending.clear()
        first = step - len(values)
        for i, value in enumerate(values):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"the loss became {value} at step {first + i + 1}: lower --lr or set --clip, or check the data "
                    f"for constant images; {self.run_dir / checkpoint.CHECKPOINT} is from before it (--resume)")
        result.losses.extend(values)
        speed = result.images / max(seconds, 1e-9)
        bar.set_postfix(loss=f"{values[-1]:.4f}", img_s=f"{speed:.1f}")
        if self.monitor is not None:
            lr = self.optimizers[0].param_groups[0]["lr"]
            self.monitor.log(step, step / self.steps_per_epoch, values, lr, speed)

    def save(self, step: int, losses: list[float]) -> None:
        if not self.dist.is_main:
            return
        checkpoint.save(self.run_dir, {
            "method": self.method.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            "step": step, "losses": list(losses), "rng": checkpoint.rng_state(), "signature": self.signature,
            "monitor": self.monitor.state.as_dict() if self.monitor is not None else None})

    def _bar(self, initial: int):
        return bar(total=self.total, initial=initial, desc=f"pretrain {self.method.name}", unit="step",
                   progress=self.settings.progress and self.dist.is_main, dynamic_ncols=True, leave=True)
