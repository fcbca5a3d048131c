"""DiRA (CVPR'22): discriminative (MoCo-v2) + restorative (U-Net) + adversarial (PatchGAN), weights 1 / 10 / 0.001.

The reference trains in two runs (``dir`` without the adversary, then ``dira``); here one run switches the
adversary on at ``adversarial_from`` (a fraction of training; 0.75 matches 1200 + 400 epochs). What differs
from the reference, on purpose:

- the restoration target is the grey crop *after* the flip, so input and target share their geometry
  (the reference regresses the mirror image half of the time);
- the key encoder is a momentum copy of the encoder and head only (the reference also copies the decoder,
  whose key output it never uses);
- the generator's adversarial term is computed through the discriminator's weights detached, so one
  backward pass serves both players; the discriminator has its own Adam (lr 2e-4, betas 0.5/0.999).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torchvision.transforms import v2

from . import augment, losses
from .base import MethodSettings, OptimizerSpec, UNetMethod
from .parts import (
    KeyQueue,
    Normalise,
    PatchDiscriminator,
    ema_update,
    frozen_copy,
    mlp,
    pooled,
    shuffled_forward,
    unet,
    unet_forward,
)


class DiRA(UNetMethod):
    name = "dira"
    paper = "DiRA: Discriminative, Restorative, and Adversarial Learning (arXiv:2204.10437)"
    lr = 0.03
    unused_parameters = True  # the discriminator has no gradient before the adversarial stage
    defaults = {"dim": 128, "queue": 65536, "momentum": 0.999, "tau": 0.2, "contrastive_weight": 1.0,
                "mse_weight": 10.0, "adv_weight": 0.001, "adversarial_from": 0.75, "disc_lr": 2e-4}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        self.net = unet(settings.arch, out_channels=1)
        width = self.net.encoder.out_channels[-1]
        self.head = mlp([width, width, self.opts["dim"]])
        self.key_encoder, self.key_head = frozen_copy(self.net.encoder), frozen_copy(self.head)
        self.discriminator = PatchDiscriminator(1)
        self.normalise = Normalise(settings.mean, settings.std)
        self.queue = KeyQueue(self.opts["queue"], self.opts["dim"])

    def fast_parts(self):
        return [self.net, self.discriminator]

    def views(self, image, meta):
        size = self.settings.image_size
        geometry = v2.Compose([augment.crop(size, (0.2, 1.0)), v2.RandomHorizontalFlip()])
        colour = augment.colour(grey=0.0, size=size)
        crop_q, crop_k = geometry(image), geometry(image)
        return {"query": augment.dira_distortion(colour(crop_q)), "key": augment.dira_distortion(colour(crop_k)),
                "target": augment.grey(crop_q)}

    def forward(self, batch, progress):
        features, logits = unet_forward(self.net, self.normalise(batch["query"]))
        restored = logits.sigmoid()  # the reference U-Net's activation: restorations in [0, 1]
        q = self.head(pooled(features[-1]))
        with torch.no_grad():
            k = self.key_head(pooled(shuffled_forward(lambda x: self.key_encoder(x)[-1], self.normalise(batch["key"]))))
        self.queue.hold(k)
        o = self.opts
        parts = {"infonce": losses.info_nce(q, k, self.queue.negatives(), o["tau"]),
                 "restore": F.mse_loss(restored.float(), batch["target"].float())}
        loss = o["contrastive_weight"] * parts["infonce"] + o["mse_weight"] * parts["restore"]
        if progress >= o["adversarial_from"]:
            parts.update(self._adversarial(restored, batch["target"]))
            loss = loss + o["adv_weight"] * parts["adversarial"] + parts["discriminator"]
        return loss, {k: v.detach() for k, v in parts.items()}

    def _adversarial(self, restored: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        fooled = functional_call(self.discriminator, frozen, (restored,))
        real, fake = self.discriminator(target), self.discriminator(restored.detach())
        return {"adversarial": losses.lsgan_generator(fooled), "discriminator": losses.lsgan_discriminator(real, fake)}

    def optimizers(self, lr, weight_decay):
        disc = set(map(id, self.discriminator.parameters()))
        generator = [p for p in self.parameters() if p.requires_grad and id(p) not in disc]
        wd = self.weight_decay if weight_decay is None else weight_decay
        return [OptimizerSpec(generator, "sgd", lr or self.lr, wd),
                OptimizerSpec(list(self.discriminator.parameters()), "adam", self.opts["disc_lr"], 0.0, (0.5, 0.999))]

    def momentum_pairs(self):
        return [(self.key_encoder, self.net.encoder), (self.key_head, self.head)]

    @torch.no_grad()
    def after_step(self, progress):
        for twin, online in self.momentum_pairs():
            ema_update(twin, online, self.opts["momentum"])
        self.queue.push()


METHODS = {DiRA.name: DiRA}
