"""The joint-embedding classics: MoCo-v2, SimCLR, BYOL, SwAV and Barlow Twins.

Each is a backbone, its head(s) and one loss from ``losses``. Defaults follow the reference repositories,
except that every method uses plain SGD (LARS/LAMB are large-batch tools; say ``--lr`` for your batch) and
SwAV runs without its feature queue and prototype freezing (they matter for small batches over many epochs).
Under DDP, MoCo shuffles BN across processes and gathers keys into its queue; SimCLR and Barlow Twins
gather embeddings with gradient, and SwAV's Sinkhorn sums over processes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import augment, losses
from .base import Method, MethodSettings
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
    """A timm backbone with input normalisation and two augmented views per sample."""

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

    def transform(self):
        return augment.simclr(self.settings.image_size)

    def views(self, image, meta):
        t = self.transform()
        return {"view0": t(image), "view1": t(image)}


class MoCoV2(_Backboned):
    """Query encoder + MLP head, momentum key encoder, a FIFO queue of negatives, InfoNCE."""

    name = "moco-v2"
    paper = "Improved Baselines with Momentum Contrastive Learning (arXiv:2003.04297)"
    lr = 0.03
    defaults = {"dim": 128, "queue": 65536, "momentum": 0.999, "tau": 0.2}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.head = mlp([self.width, self.width, self.opts["dim"]])
        self.key_backbone, self.key_head = frozen_copy(self.backbone), frozen_copy(self.head)
        self.queue = KeyQueue(self.opts["queue"], self.opts["dim"])

    def transform(self):
        return augment.moco_v2(self.settings.image_size)

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
    paper = "A Simple Framework for Contrastive Learning of Visual Representations (arXiv:2002.05709)"
    lr = 0.3
    weight_decay = 1e-6
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
    paper = "Bootstrap Your Own Latent (arXiv:2006.07733)"
    lr = 0.2
    weight_decay = 1.5e-6
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
        return 1 - (1 - self.opts["momentum"]) * (math.cos(math.pi * progress) + 1) / 2

    def momentum_pairs(self):
        return [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]

    @torch.no_grad()
    def after_step(self, progress):
        for twin, online in self.momentum_pairs():
            ema_update(twin, online, self.target_momentum(progress))


class SwAV(_Backboned):
    """Multi-crop views, prototypes, Sinkhorn codes of the two large crops predicted from every other crop."""

    name = "swav"
    paper = "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments (arXiv:2006.09882)"
    lr = 0.6
    weight_decay = 1e-6
    defaults = {"dim": 128, "prototypes": 3000, "tau": 0.1, "epsilon": 0.05, "sinkhorn_iterations": 3,
                "small_crops": 6}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.head = mlp([self.width, 2048, self.opts["dim"]], batch_norm=True)
        self.prototypes = nn.Linear(self.opts["dim"], self.opts["prototypes"], bias=False)

    def views(self, image, meta):
        size = self.settings.image_size
        large, small = augment.simclr(size, (0.14, 1.0)), augment.simclr(max(32, size * 96 // 224), (0.05, 0.14))
        out = {f"view{i}": large(image) for i in range(2)}
        out.update({f"small{i}": small(image) for i in range(self.opts["small_crops"])})
        return out

    def forward(self, batch, progress):
        with torch.no_grad():
            self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
        names = ["view0", "view1", *(f"small{i}" for i in range(self.opts["small_crops"]))]
        crops = [batch[k] for k in names]  # the two large crops first: their codes are the targets
        scores = [self.prototypes(F.normalize(self.embed(c), dim=1)) for c in crops]
        world_sum = all_reduce_sum if world_size() > 1 else None
        codes = [losses.sinkhorn(s.detach(), self.opts["epsilon"], self.opts["sinkhorn_iterations"], world_sum)
                 for s in scores[:2]]
        loss = losses.swav_loss(scores, codes, self.opts["tau"])
        return loss, {"swapped": loss.detach()}


class BarlowTwins(_Backboned):
    """Backbone + 3-layer BN projector; the cross-correlation of the two views' embeddings towards identity."""

    name = "barlow-twins"
    paper = "Barlow Twins: Self-Supervised Learning via Redundancy Reduction (arXiv:2103.03230)"
    lr = 0.2
    weight_decay = 1e-6
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
