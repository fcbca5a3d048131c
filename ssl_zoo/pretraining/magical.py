"""MAGICAL (Neural Networks 2023, code lichen14/TOWER): generative + contrastive with the NL+M proxy, 1:1.

The U-Net restores the original from its NL+M version (``medical_augment.magical_proxy``: one of three fixed
Bézier intensity curves, a twist at p 0.1, stripe then block masks), and NT-Xent (τ 0.1) pulls the
projections of the two together. The reconstruction loss is L1 for chest X-rays (preset ``magical-cxr``, the
default) and MSE for MedMNIST (``magical-medmnist``). The best checkpoint is the one with the lowest
validation loss, which is the reference's: the reconstruction of *clean* images (``validation_loss``).
The reference's bugs fixed here are listed in ``presets.toml`` (``paper.magical.notes``) and on the card.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import losses, medical_augment
from .base import MethodSettings, UNetMethod, require_choice
from .parts import Normalise, gather_with_grad, mlp, pooled, unet, unet_forward


class Magical(UNetMethod):
    name = "magical"
    paper = "Synergizing generative and contrastive learning (MAGICAL / TOWER, Neural Networks 2023)"
    defaults = {"dim": 128, "tau": 0.1, "mask_ratio": 0.25, "stripe_ratio": 0.6, "twist_p": 0.1,
                "reconstruction": "l1", "out_channels": 1, "generative_weight": 1.0, "contrastive_weight": 1.0}
    RECONSTRUCTION = {"l1": F.l1_loss, "mse": F.mse_loss}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        require_choice(self.name, "reconstruction", self.opts["reconstruction"], tuple(self.RECONSTRUCTION))
        require_choice(self.name, "out_channels", self.opts["out_channels"], (1, 3))
        self.net = unet(settings.arch, out_channels=self.opts["out_channels"])
        width = self.net.encoder.out_channels[-1]
        self.projector = mlp([width, 2048, self.opts["dim"]])
        self.normalise = Normalise(settings.mean, settings.std)

    def views(self, image, meta):
        # The image as read (resized, [0, 1]): the reference's pre-training loaders neither crop nor flip.
        original = image
        o = self.opts
        proxy = medical_augment.magical_proxy(original, o["mask_ratio"], o["twist_p"], o["stripe_ratio"])
        return {"original": original, "proxy": proxy}

    def target(self, original: torch.Tensor) -> torch.Tensor:
        """What the U-Net restores: the [0, 1] original, grey when it reconstructs one channel."""
        return original.mean(1, keepdim=True) if self.opts["out_channels"] == 1 else original

    def validation_loss(self, batch, progress):
        """The reference's early-stopping criterion: reconstruction of the clean image from itself."""
        _, logits = unet_forward(self.net, self.normalise(batch["original"]))
        target = self.target(batch["original"])
        return self.RECONSTRUCTION[self.opts["reconstruction"]](logits.sigmoid().float(), target.float())

    def forward(self, batch, progress):
        features, logits = unet_forward(self.net, self.normalise(batch["proxy"]))
        restored = logits.sigmoid()  # the reference U-Net's activation: restorations in [0, 1]
        clean = self.net.encoder(self.normalise(batch["original"]))
        z_proxy, z_clean = (gather_with_grad(self.projector(pooled(f[-1]))) for f in (features, clean))
        reconstruct = self.RECONSTRUCTION[self.opts["reconstruction"]]
        parts = {"generative": reconstruct(restored.float(), self.target(batch["original"]).float()),
                 "contrastive": losses.nt_xent(z_proxy, z_clean, self.opts["tau"])}
        loss = self.opts["generative_weight"] * parts["generative"] + self.opts["contrastive_weight"] * parts["contrastive"]
        return loss, {k: v.detach() for k, v in parts.items()}


METHODS = {Magical.name: Magical}
