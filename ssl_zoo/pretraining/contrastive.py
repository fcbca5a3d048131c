"""The joint-embedding classics: MoCo-v2, SimCLR, BYOL, SwAV and Barlow Twins.

Each is a backbone, its head(s) and one loss from ``losses``; the optimiser, schedule and run length are
the recipe's (``presets.toml``). SwAV keeps its feature queue (from ``queue_start_epoch``, cut to a multiple
of the global batch as in the reference) and freezes its prototypes for ``freeze_prototypes_epochs``. Under DDP, MoCo shuffles BN across processes and gathers keys into its queue; SimCLR and Barlow Twins
gather embeddings with gradient, and SwAV's Sinkhorn sums over processes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PresetError
from . import losses, views
from .base import Method, MethodSettings
from .optim import ema_momentum
from .parts import (
    KeyQueue,
    Normalise,
    all_reduce_sum,
    backbone,
    ema_update,
    frozen_copy,
    gather_with_grad,
    mlp,
    shuffled_forward,
    world_size,
)


class _Backboned(Method):
    """A timm backbone with input normalisation; its views are the ``view_recipe`` of ``views.toml``."""

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.backbone = backbone(settings.arch)
        self.normalise = Normalise(settings.mean, settings.std)
        self.width = self.backbone.num_features

    def encoder(self) -> nn.Module:
        return self.backbone

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise, backbone, projection head."""
        return self.head(self.backbone(self.normalise(x)))


class MoCoV2(_Backboned):
    """Query encoder + MLP head, momentum key encoder, a FIFO queue of negatives, InfoNCE."""

    name = "moco-v2"
    view_recipe = "moco-v2"  # views.toml: drawn on the device on CUDA, in the workers otherwise
    paper = "Improved Baselines with Momentum Contrastive Learning (arXiv:2003.04297)"
    defaults = {"dim": 128, "queue": 65536, "momentum": 0.999, "tau": 0.2}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.head = mlp([self.width, self.width, self.opts["dim"]])
        self.key_backbone, self.key_head = frozen_copy(self.backbone), frozen_copy(self.head)
        self.queue = KeyQueue(self.opts["queue"], self.opts["dim"])

    def forward(self, batch, progress):
        q = self.embed(batch["view0"])
        with torch.no_grad():
            k = self.key_head(shuffled_forward(self.key_backbone, self.normalise(batch["view1"])))
        self.queue.hold(k)
        loss = losses.info_nce(q, k, self.queue.negatives(), self.opts["tau"])
        return loss, {"infonce": loss.detach()}

    def momentum_pairs(self):
        return [(self.key_backbone, self.backbone), (self.key_head, self.head)]

    @torch.no_grad()
    def after_step(self, progress):
        for twin, online in self.momentum_pairs():
            ema_update(twin, online, self.opts["momentum"])
        self.queue.push()


class SimCLR(_Backboned):
    """Backbone + 2-layer BN projector, NT-Xent over the (gathered) 2N views."""

    name = "simclr"
    view_recipe = "simclr"  # views.toml: drawn on the device on CUDA, in the workers otherwise
    paper = "A Simple Framework for Contrastive Learning of Visual Representations (arXiv:2002.05709)"
    defaults = {"dim": 128, "tau": 0.1}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.head = mlp([self.width, self.width, self.opts["dim"]], batch_norm=True)

    def forward(self, batch, progress):
        z1, z2 = (gather_with_grad(self.embed(batch[k])) for k in ("view0", "view1"))
        loss = losses.nt_xent(z1, z2, self.opts["tau"])
        return loss, {"nt_xent": loss.detach()}


class BYOL(_Backboned):
    """Online backbone + projector + predictor regressing a momentum target; τ follows a cosine to 1."""

    name = "byol"
    view_recipe = "byol"  # views.toml: drawn on the device on CUDA, in the workers otherwise
    paper = "Bootstrap Your Own Latent (arXiv:2006.07733)"
    defaults = {"hidden": 4096, "dim": 256, "momentum": 0.996}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        hidden, dim = self.opts["hidden"], self.opts["dim"]
        self.projector = mlp([self.width, hidden, dim], batch_norm=True)
        self.predictor = mlp([dim, hidden, dim], batch_norm=True)
        self.target_backbone, self.target_projector = frozen_copy(self.backbone), frozen_copy(self.projector)

    def forward(self, batch, progress):
        v1, v2 = self.normalise(batch["view0"]), self.normalise(batch["view1"])
        p1, p2 = (self.predictor(self.projector(self.backbone(v))) for v in (v1, v2))
        with torch.no_grad():
            z1, z2 = (self.target_projector(self.target_backbone(v)) for v in (v1, v2))
        loss = losses.byol_loss(p1, z2) + losses.byol_loss(p2, z1)
        return loss, {"regression": loss.detach()}

    def target_momentum(self, progress: float) -> float:
        """τ = 1 − (1 − τ_base)(cos(π·progress) + 1)/2."""
        return ema_momentum(self.opts["momentum"], progress)

    def momentum_pairs(self):
        return [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]

    @torch.no_grad()
    def after_step(self, progress):
        for twin, online in self.momentum_pairs():
            ema_update(twin, online, self.target_momentum(progress))


class SwAV(_Backboned):
    """Multi-crop views, prototypes, Sinkhorn codes of the two large crops predicted from every other crop."""

    name = "swav"
    view_recipe = "swav"  # views.toml: drawn on the device on CUDA, in the workers otherwise
    paper = "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments (arXiv:2006.09882)"
    unused_parameters = True  # the prototypes get no gradient while frozen
    defaults = {"dim": 128, "prototypes": 3000, "tau": 0.1, "epsilon": 0.05, "sinkhorn_iterations": 3,
                "small_crops": 6, "queue": 0, "queue_start_epoch": 15, "freeze_prototypes_epochs": 1}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.head = mlp([self.width, 2048, self.opts["dim"]], batch_norm=True)
        self.prototypes = nn.Linear(self.opts["dim"], self.opts["prototypes"], bias=False)
        # Embeddings of the two large crops of earlier batches, this process's share (zeros until filled);
        # the checkpoint keeps the main process's, which every process takes back on --resume.
        self.register_buffer("queue", torch.zeros(2, self.queue_length(settings.batch_size), self.opts["dim"]))
        small = self.opts["small_crops"]
        if type(small) is not int or small < 0:
            raise PresetError(f"swav: option small_crops={small!r} must be a whole number >= 0: pass -o small_crops=6")
        # Only the small crops the loss uses are drawn (in the workers or on the device).
        self.view_recipe = views.view_recipe(self.view_recipe).with_count("small", small)

    def queue_length(self, batch_size: int) -> int:
        """The queue cut to a multiple of the global batch (0 when the batch is larger), per process."""
        length = self.opts["queue"]
        if batch_size:
            length -= length % batch_size
        return length // world_size()

    def forward(self, batch, progress):
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        names = self.view_recipe.keys  # the two large crops first, then the small ones drawn
        frozen = self.epoch < self.opts["freeze_prototypes_epochs"]
        weight = self.prototypes.weight.detach() if frozen else self.prototypes.weight
        embeddings = [F.normalize(self.embed(batch[k]), dim=1) for k in names]  # the large crops first
        scores = [F.linear(z, weight) for z in embeddings]
        world_sum = all_reduce_sum if world_size() > 1 else None
        codes = [losses.sinkhorn(self.with_queue(i, scores[i].detach(), embeddings[i].detach()),
                                 self.opts["epsilon"], self.opts["sinkhorn_iterations"], world_sum)[-len(scores[i]):]
                 for i in range(2)]
        loss = losses.swav_loss(scores, codes, self.opts["tau"])
        return loss, {"swapped": loss.detach()}

    @torch.no_grad()
    def with_queue(self, crop: int, scores: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        """The scores of ``crop`` after those of the queued embeddings once the queue is full; then queue it."""
        queue = self.queue[crop]
        if not len(queue) or self.epoch < self.opts["queue_start_epoch"]:
            return scores
        if torch.all(queue[-1] == 0):  # not full yet: the reference waits for it
            if self.training:
                self._push(queue, embedding)
            return scores
        out = torch.cat([queue @ self.prototypes.weight.T.to(queue.dtype), scores.float()])
        if self.training:
            self._push(queue, embedding)
        return out

    @staticmethod
    def _push(queue: torch.Tensor, embedding: torch.Tensor) -> None:
        n = min(len(embedding), len(queue))
        queue[n:] = queue[:-n].clone()
        queue[:n] = embedding[:n].to(queue.dtype)


class BarlowTwins(_Backboned):
    """Backbone + 3-layer BN projector; the cross-correlation of the two views' embeddings towards identity."""

    name = "barlow-twins"
    view_recipe = "barlow-twins"  # views.toml: drawn on the device on CUDA, in the workers otherwise
    paper = "Barlow Twins: Self-Supervised Learning via Redundancy Reduction (arXiv:2103.03230)"
    defaults = {"hidden": 8192, "lambd": 0.0051}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        h = self.opts["hidden"]
        self.head = mlp([self.width, h, h, h], batch_norm=True)

    def forward(self, batch, progress):
        z1, z2 = (gather_with_grad(self.embed(batch[k])) for k in ("view0", "view1"))
        loss = losses.barlow_twins_loss(z1, z2, self.opts["lambd"])
        return loss, {"barlow": loss.detach()}


METHODS = {m.name: m for m in (MoCoV2, SimCLR, BYOL, SwAV, BarlowTwins)}
