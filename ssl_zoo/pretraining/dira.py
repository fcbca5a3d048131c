"""DiRA (CVPR'22): discriminative (MoCo-v2) + restorative (U-Net) + adversarial (PatchGAN), weights 1 / 10 / 0.001.

Two runs, as in the reference: ``mode = "dir"`` (discriminative + restorative; presets ``paper`` /
``dira-dir``), then ``mode = "dira"`` (+ adversarial, preset ``dira-dira``, batch 16) started from the dir run
with ``--init RUN_DIR`` (its whole state: U-Net, heads, key encoder, queue). Inputs are not normalised (the
reference feeds [0, 1] crops). What differs from the reference, on purpose:

- the restoration target is the grey crop *after* the flip, so input and target share their geometry
  (the reference regresses the mirror image half of the time);
- the key encoder is a momentum copy of the encoder and head only (the reference also copies the decoder,
  whose key output it never uses);
- the generator's adversarial term is computed through the discriminator's weights detached, so one
  backward pass serves both players; the discriminator has its own Adam (lr 2e-4, betas 0.5/0.999, constant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call
from torchvision.transforms import v2

from . import augment, losses, medical_augment
from .base import MethodSettings, UNetMethod, require_choice
from .optim import OptimizerSpec, ParamGroup, recipe_spec, split_groups
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
    unused_parameters = True  # the discriminator has no gradient in the dir stage
    defaults = {"dim": 128, "queue": 65536, "momentum": 0.999, "tau": 0.2, "contrastive_weight": 1.0,
                "mse_weight": 10.0, "adv_weight": 0.001, "mode": "dir", "disc_lr": 2e-4}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        require_choice(self.name, "mode", self.opts["mode"], ("dir", "dira"))
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
        return {"query": medical_augment.dira_distortion(colour(crop_q)),
                "key": medical_augment.dira_distortion(colour(crop_k)), "target": medical_augment.grey(crop_q)}

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
        if o["mode"] == "dira":
            parts.update(self._adversarial(restored, batch["target"]))
            loss = loss + o["adv_weight"] * parts["adversarial"] + parts["discriminator"]
        return loss, {k: v.detach() for k, v in parts.items()}

    def _adversarial(self, restored: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        fooled = functional_call(self.discriminator, frozen, (restored,))
        real, fake = self.discriminator(target), self.discriminator(restored.detach())
        return {"adversarial": losses.lsgan_generator(fooled), "discriminator": losses.lsgan_discriminator(real, fake)}

    def optimizers(self, recipe, batch_size):
        """The recipe's optimiser for the generator; the discriminator's own Adam (lr 2e-4, betas 0.5/0.999)."""
        disc = set(map(id, self.discriminator.parameters()))
        generator = [(n, p) for n, p in self.named_parameters() if id(p) not in disc]
        return [recipe_spec(split_groups(generator, recipe), recipe, batch_size),
                OptimizerSpec([ParamGroup(list(self.discriminator.parameters()))], "adam", self.opts["disc_lr"],
                              betas=(0.5, 0.999), scheduled=False)]

    def momentum_pairs(self):
        return [(self.key_encoder, self.net.encoder), (self.key_head, self.head)]

    @torch.no_grad()
    def after_step(self, progress):
        for twin, online in self.momentum_pairs():
            ema_update(twin, online, self.opts["momentum"])
        self.queue.push()


METHODS = {DiRA.name: DiRA}
