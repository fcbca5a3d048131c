"""Optimisers, parameter groups and schedules of the pre-training recipes.

LARS and LAMB come from ``timm.optim`` (maintained, already a dependency). Parameters split into a decayed
group and a plain group (biases and normalisation weights, 1-D tensors, plus what a method names) where the
recipe excludes them: the plain group has no weight decay, and so (timm's ``always_adapt=False``) no LARS/LAMB
trust-ratio adaptation either, as in the BYOL, Barlow Twins, SimCLR and SparK code.

Schedules are functions of the step: a linear warm-up from ``warmup_start`` to the peak, then a half cosine to
``final_lr`` (fractions of the peak); with ``schedule_unit = "epoch"`` the step is the epoch's first step, so
the rate changes once per epoch as in the MoCo, DiRA and MAGICAL code. BYOL's target momentum follows its own
cosine (``ema_momentum``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .recipes import Recipe


@dataclass(frozen=True)
class ParamGroup:
    """Parameters that share a learning-rate scale and weight-decay rule."""

    params: list[nn.Parameter]
    decay: bool = True
    lr_scale: float = 1.0


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimiser: ``kind`` from ``recipes.OPTIMIZERS``, its peak lr and weight decay, and its groups.

    ``scheduled`` False keeps the learning rate constant (DiRA's discriminator).
    """

    groups: list[ParamGroup]
    kind: str
    lr: float
    weight_decay: float = 0.0
    weight_decay_end: float | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    scheduled: bool = True
    extra: dict = field(default_factory=dict)


def split_groups(named: list[tuple[str, nn.Parameter]], recipe: Recipe,
                 plain_names: frozenset[str] = frozenset()) -> list[ParamGroup]:
    """Trainable parameters in a decayed and a plain group (the recipe's exclusion rule); empty groups dropped.

    A parameter is plain when the recipe excludes norms and biases and it is 1-D (bias, BN/LN weight) or its
    name is in ``plain_names`` (SparK's mask tokens). The plain group takes ``recipe.bias_lr_scale``.
    """
    trainable = [(n, p) for n, p in named if p.requires_grad]
    if not recipe.exclude_norm_bias:
        return [ParamGroup([p for _, p in trainable])] if trainable else []
    plain = [p for n, p in trainable if p.ndim <= 1 or n in plain_names]
    plain_ids = set(map(id, plain))
    decayed = [p for _, p in trainable if id(p) not in plain_ids]
    groups = [ParamGroup(decayed), ParamGroup(plain, decay=False, lr_scale=recipe.bias_lr_scale)]
    return [g for g in groups if g.params]


def recipe_spec(groups: list[ParamGroup], recipe: Recipe, batch_size: int) -> OptimizerSpec:
    """The recipe's optimiser over ``groups`` at the peak lr for ``batch_size``."""
    return OptimizerSpec(groups, recipe.optimizer, recipe.peak_lr(batch_size), recipe.weight_decay,
                         recipe.weight_decay_end, recipe.momentum, tuple(recipe.betas))


def make_optimizer(spec: OptimizerSpec) -> torch.optim.Optimizer:
    """The torch / timm optimiser of ``spec``; each group remembers its peak lr and weight decay."""
    groups = [{"params": g.params, "lr": spec.lr * g.lr_scale, "weight_decay": spec.weight_decay if g.decay else 0.0}
              for g in spec.groups]
    optimizer = _build(spec, groups)
    for group, source in zip(optimizer.param_groups, spec.groups):
        group["base_lr"], group["base_wd"] = group["lr"], group["weight_decay"]
        group["wd_end"] = spec.weight_decay_end if source.decay and spec.weight_decay_end is not None else None
        group["scheduled"] = spec.scheduled
    return optimizer


def _build(spec: OptimizerSpec, groups: list[dict]) -> torch.optim.Optimizer:
    if spec.kind == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum)
    if spec.kind == "lars":
        from timm.optim import Lars

        return Lars(groups, lr=spec.lr, momentum=spec.momentum, trust_coeff=spec.extra.get("trust_coeff", 1e-3))
    if spec.kind == "lamb":
        from timm.optim import Lamb

        # max_grad_norm None: clipping is the loop's, by the recipe's ``clip``
        return Lamb(groups, lr=spec.lr, betas=spec.betas, max_grad_norm=None)
    kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    return kinds[spec.kind](groups, lr=spec.lr, betas=spec.betas)


@dataclass(frozen=True)
class Schedule:
    """Where the learning rate and weight decay are at each step of a run of ``total`` steps."""

    total: int
    steps_per_epoch: int
    warmup: int = 0
    warmup_start: float = 0.0
    final: float = 0.0
    kind: str = "cosine"
    per_epoch: bool = False

    @classmethod
    def of(cls, recipe: Recipe, epochs: int, steps_per_epoch: int) -> "Schedule":
        per_epoch = recipe.schedule_unit == "epoch"
        warmup = round(recipe.warmup_epochs * (1 if per_epoch else steps_per_epoch))
        return cls(epochs * (1 if per_epoch else steps_per_epoch), steps_per_epoch, warmup, recipe.warmup_start,
                   recipe.final_lr, recipe.schedule, per_epoch)

    def _position(self, step: int) -> int:
        return step // self.steps_per_epoch if self.per_epoch else step

    def lr_factor(self, step: int) -> float:
        """The fraction of the peak lr at ``step`` (0-based)."""
        t = self._position(step)
        if self.kind == "constant":
            return 1.0
        if t < self.warmup:
            return self.warmup_start + (1 - self.warmup_start) * t / self.warmup
        progress = (t - self.warmup) / max(1, self.total - self.warmup)
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def weight_decay(self, step: int, start: float, end: float) -> float:
        """SparK's weight-decay cosine from ``start`` to ``end`` over the whole run."""
        progress = min(1.0, self._position(step) / max(1, self.total - 1))
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))

    def apply(self, optimizers: list[torch.optim.Optimizer], step: int) -> None:
        """Set every scheduled group's lr (and annealed weight decay) for ``step``."""
        factor = self.lr_factor(step)
        for opt in optimizers:
            for group in opt.param_groups:
                if group.get("scheduled", True):
                    group["lr"] = group["base_lr"] * factor
                if group.get("wd_end") is not None:
                    group["weight_decay"] = self.weight_decay(step, group["base_wd"], group["wd_end"])


def ema_momentum(base: float, progress: float) -> float:
    """BYOL's target momentum: τ = 1 − (1 − τ_base)(cos(π·progress) + 1)/2, τ_base at the start, 1 at the end."""
    return 1 - (1 - base) * (math.cos(math.pi * progress) + 1) / 2
