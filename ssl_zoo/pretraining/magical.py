"""MAGICAL (Neural Networks 2023, code lichen14/TOWER): generative + contrastive with the NL+M proxy, 1:1.

The U-Net restores the original from its NL+M version (Models Genesis' Bézier intensity curve, then block
masking), and NT-Xent (τ 0.1) pulls the projections of the two together. Rebuilt from the paper and its code with
the reference's bugs fixed:

- the projector reads the globally average-pooled last feature map (the reference's ``view(-1, 2048)``
  mixes space into the batch unless the map is 1x1);
- the intensity curve runs on [0, 1] images before normalisation (the reference clamps normalised images);
- the restoration target is the [0, 1] original, the range of the sigmoid output (the reference regresses
  [0, 1] outputs onto [-1, 1] targets);
- ``mask_ratio`` is the hidden fraction (the reference's inverted block mask hides most of the image
  whatever the ratio), and the 1x1-window "pixel shuffling" no-op is dropped;
- plain NT-Xent, without SupCon's 0.1/0.07 rescaling.
"""

from __future__ import annotations

import torch.nn.functional as F
from torchvision.transforms import v2

from . import augment, losses
from .base import MethodSettings, UNetMethod
from .parts import Normalise, gather_with_grad, mlp, pooled, unet, unet_forward


class Magical(UNetMethod):
    name = "magical"
    paper = "Synergizing generative and contrastive learning (MAGICAL / TOWER, Neural Networks 2023)"
    lr = 1e-3
    optimizer = "adam"
    weight_decay = 0.0
    defaults = {"dim": 128, "tau": 0.1, "mask_ratio": 0.25, "generative_weight": 1.0, "contrastive_weight": 1.0}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.net = unet(settings.arch, out_channels=3)
        width = self.net.encoder.out_channels[-1]
        self.projector = mlp([width, 2048, self.opts["dim"]])
        self.normalise = Normalise(settings.mean, settings.std)

    def views(self, image, meta):
        size = self.settings.image_size
        original = v2.Compose([augment.crop(size, (0.67, 1.0)), v2.RandomHorizontalFlip()])(image)
        proxy = augment.block_mask(augment.bezier_intensity(original), self.opts["mask_ratio"])
        return {"original": original, "proxy": proxy}

    def forward(self, batch, progress):
        features, logits = unet_forward(self.net, self.normalise(batch["proxy"]))
        restored = logits.sigmoid()  # the reference U-Net's activation: restorations in [0, 1]
        clean = self.net.encoder(self.normalise(batch["original"]))
        z_proxy, z_clean = (gather_with_grad(self.projector(pooled(f[-1]))) for f in (features, clean))
        parts = {"generative": F.mse_loss(restored.float(), batch["original"].float()),
                 "contrastive": losses.nt_xent(z_proxy, z_clean, self.opts["tau"])}
        loss = self.opts["generative_weight"] * parts["generative"] + self.opts["contrastive_weight"] * parts["contrastive"]
        return loss, {k: v.detach() for k, v in parts.items()}


METHODS = {Magical.name: Magical}
