"""What every pre-training method gives the loop, and the table of methods by name.

A method is an ``nn.Module`` whose ``forward(batch, progress)`` returns the loss and its named parts; the
loop knows nothing else about it. Its views come from one of two places: a ``view_recipe`` (a table of
``views.toml``, the joint-embedding methods), drawn per sample by ``augment.recipe_views`` or batched on the
device by ``views.make_views``; or, for a method without one, its own ``views``, which turns one [0, 1] image
into the tensors one sample of its batch holds. Both run with torch's RNG seeded per sample (per step on the
device), so a resumed run sees the same views.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Sampler

from ..errors import PresetError, UnknownMethodError
from .data import ResumableBatches
from .optim import OptimizerSpec, recipe_spec, split_groups
from .recipes import Recipe

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# method name -> module under ssl_zoo.pretraining that defines it (imported on use).
METHOD_MODULES = {
    "moco-v2": "contrastive", "simclr": "contrastive", "byol": "contrastive", "swav": "contrastive",
    "barlow-twins": "contrastive", "dira": "dira", "magical": "magical",
    "chaitanya-global": "chaitanya", "chaitanya-local": "chaitanya", "spark": "spark",
}


@dataclass(frozen=True)
class MethodSettings:
    """What shapes a method's networks and views; ``options`` overrides the method's own ``defaults``."""

    arch: str = "resnet50"
    image_size: int = 224
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    views: str = ""  # the view recipe ("" = the method's own)
    batch_size: int = 0  # the global batch (SwAV cuts its queue to a multiple of it; 0 = unknown)
    options: dict[str, Any] = field(default_factory=dict)


class Method(nn.Module):
    """Base class: subclasses set the class attributes and implement ``forward`` (and ``views`` unless they name a
    ``view_recipe``)."""

    name: ClassVar[str]
    paper: ClassVar[str] = ""
    view_recipe: ClassVar[str] = ""  # the generic view pipeline (pretraining/views.py) the method trains on
    defaults: ClassVar[dict[str, Any]] = {}
    unused_parameters: ClassVar[bool] = False  # DDP must look for parameters without gradient
    needs_volumes: ClassVar[bool] = False  # samples must carry their volume and slice position
    select: str = "last"  # the recipe's output checkpoint ("best-validation" for DiRA, MAGICAL), set by pretrain
    early_stop: int | None = None  # the recipe's early-stopping patience in epochs (MAGICAL 30), set by pretrain

    def __init__(self, settings: MethodSettings):
        super().__init__()
        self.view_recipe = settings.views or type(self).view_recipe
        self.epoch = 0.0  # epochs done, set by the loop before each step (prototype freezing, queue start)
        unknown = sorted(set(settings.options) - set(self.defaults))
        if unknown:
            raise UnknownMethodError(f"{self.name} has no option(s) {unknown}; options: {sorted(self.defaults)}")
        self.settings = settings
        self.opts = {**self.defaults, **settings.options}

    def views(self, image: torch.Tensor, meta: dict[str, float]) -> dict[str, torch.Tensor]:
        """The tensors of one sample from a (C, H, W) image in [0, 1] (a method without a ``view_recipe``)."""
        raise NotImplementedError(f"{self.name} has no views of its own: its view recipe makes its samples "
                                  "(views.recipe_for)")

    def forward(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, named loss parts) for a batch on the device; ``progress`` ∈ [0, 1] through training."""
        raise NotImplementedError

    def encoder(self) -> nn.Module:
        """The trained backbone, whose state dict has the timm/torchvision key names."""
        raise NotImplementedError

    def unet(self) -> nn.Module | None:
        """The trained smp U-Net for methods that keep their decoder."""
        return None

    def fast_parts(self) -> list[nn.Module]:
        """The modules worth ``torch.compile`` (the convolutional networks, not queues or EMA code)."""
        return [self.encoder()]

    def optimizers(self, recipe: Recipe, batch_size: int) -> list[OptimizerSpec]:
        """Default: the recipe's optimiser over every trainable parameter, biases and norms split as it says."""
        return [recipe_spec(split_groups(list(self.named_parameters()), recipe), recipe, batch_size)]

    def validation_loss(self, batch: dict[str, torch.Tensor], progress: float) -> torch.Tensor:
        """The loss that picks the best checkpoint (call under ``torch.no_grad()``): the training loss by default."""
        return self.forward(batch, progress)[0]

    def batch_sampler(self, samples: list, per_rank: int, *, seed: int, epoch: int, skip: int = 0, rank: int = 0,
                      world: int = 1) -> Sampler:
        """The batches of ``(index, seed)`` keys of one epoch: a seeded shuffle by default."""
        return ResumableBatches(len(samples), per_rank, seed=seed, epoch=epoch, skip=skip, rank=rank, world=world)

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        """Work after each optimiser step (momentum encoders, queues); nothing by default."""

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(momentum twin, online network) pairs: MoCo's key encoder, BYOL's target; none by default."""
        return []

    def reset_targets(self) -> None:
        """Copy the online networks into their momentum twins (after loading initial weights)."""
        for twin, online in self.momentum_pairs():
            twin.load_state_dict(online.state_dict())


class UNetMethod(Method):
    """A method that trains an smp U-Net ``self.net``: its encoder is the backbone, the U-Net is kept too."""

    net: nn.Module

    def encoder(self) -> nn.Module:
        return self.net.encoder

    def unet(self) -> nn.Module:
        return self.net

    def fast_parts(self) -> list[nn.Module]:
        return [self.net]


def require_choice(method: str, option: str, value: Any, choices: tuple) -> None:
    """Raise a one-line error when a method option is not one of ``choices``.

    Raises:
        PresetError: For a value outside ``choices``.
    """
    if value not in choices:
        raise PresetError(f"{method}: option {option}={value!r} is not one of {list(choices)}: "
                          f"pass -o {option}={choices[0]}")


def method_class(name: str) -> type[Method]:
    """The class of method ``name``.

    Raises:
        UnknownMethodError: For a name not in ``METHOD_MODULES``.
    """
    if name not in METHOD_MODULES:
        raise UnknownMethodError(f"unknown pre-training method {name!r}; choose one of {sorted(METHOD_MODULES)}")
    module = importlib.import_module(f".{METHOD_MODULES[name]}", __package__)
    return module.METHODS[name]


def build_method(name: str, settings: MethodSettings) -> Method:
    """A new method ``name`` with randomly initialised networks."""
    return method_class(name)(settings)
