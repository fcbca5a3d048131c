"""SparK (ICLR'23): sparse masked modelling for ResNets.

A mask is drawn on the 1/32 grid (``mask_ratio`` hidden). The backbone stays a plain timm ResNet, so its
state dict is the model folder's, but while SparK trains it behaves sparsely:

- every Conv2d / MaxPool2d output is multiplied by the mask at its resolution (forward hooks: masked dense
  convolution, SparK's stand-in for submanifold sparse convolution);
- every BatchNorm2d normalises only the active positions (its class is swapped for ``SparseBatchNorm2d``,
  same parameters and buffers, so the keys do not change).

The four stage outputs are densified (sparse BN, a learnable mask token per scale at hidden positions, a
projection to the decoder width) and a light U-Net-style decoder reconstructs the image; the loss is the
per-patch-normalised MSE on hidden patches. The recipe is the reference's: LAMB (betas 0.9/0.95), weight
decay 0.04 → 0.2 by a cosine, none on biases, norms and mask tokens, drop_path 0.05, clip 5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from . import augment, losses
from .base import Method, MethodSettings
from .optim import recipe_spec, split_groups
from .data import TrainingDataError
from .parts import Normalise, backbone

DOWNSAMPLE = 32


class MaskState:
    """The active positions (B, 1, f, f) of the current batch, shared by the hooks and sparse BN layers."""

    active: torch.Tensor | None = None

    def at(self, height: int, width: int) -> torch.Tensor:
        f = self.active.shape[-1]
        return self.active.repeat_interleave(height // f, 2).repeat_interleave(width // f, 3)


class SparseBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the active positions only (BatchNorm1d on their feature vectors); zeros elsewhere."""

    mask_state: MaskState

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = getattr(self, "mask_state", None)
        if state is None or state.active is None:
            return super().forward(x)
        keep = state.at(*x.shape[2:])[:, 0]  # (B, H, W)
        rows = x.permute(0, 2, 3, 1)[keep]  # (active, C)
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
        normed = F.batch_norm(rows, self.running_mean, self.running_var, self.weight, self.bias,
                              self.training, self.momentum, self.eps)
        out = torch.zeros_like(x.permute(0, 2, 3, 1))
        out[keep] = normed.to(out.dtype)
        return out.permute(0, 3, 1, 2)


def sparsify(model: nn.Module, state: MaskState) -> None:
    """Make ``model`` compute sparsely while ``state.active`` is set (in place; keys unchanged)."""
    def masked(module, inputs, output):
        return output if state.active is None else output * state.at(*output.shape[2:]).to(output.dtype)

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            module.register_forward_hook(masked)
        if type(module) is nn.BatchNorm2d:
            module.__class__ = SparseBatchNorm2d
            module.mask_state = state


def stage_outputs(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of a timm ResNet's layer1..layer4 (strides 4, 8, 16, 32)."""
    x = net.maxpool(net.act1(net.bn1(net.conv1(x))))
    out = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        out.append(x)
    return out


class DecoderBlock(nn.Sequential):
    """×2 transposed convolution, then two 3x3 convolutions with BN (ReLU6 between)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))


class SparK(Method):
    name = "spark"
    paper = "Designing BERT for Convolutional Networks: Sparse and Hierarchical Masked Modeling (arXiv:2301.03580)"
    defaults = {"mask_ratio": 0.6, "decoder_width": 768, "drop_path": 0.05}

    def __init__(self, settings: MethodSettings):
        super().__init__(settings)
        if settings.image_size % DOWNSAMPLE:
            raise TrainingDataError(f"spark needs an image size divisible by {DOWNSAMPLE}, got "
                                    f"{settings.image_size}: pass --image-size {settings.image_size // 32 * 32 or 32}")
        self.backbone = backbone(settings.arch, drop_path_rate=self.opts["drop_path"])
        self.mask_state = MaskState()
        sparsify(self.backbone, self.mask_state)
        self.normalise = Normalise(settings.mean, settings.std)
        widths = [self.backbone.feature_info[i]["num_chs"] for i in (1, 2, 3, 4)][::-1]  # smallest scale first
        dec = [self.opts["decoder_width"] // 2 ** i for i in range(6)]
        self.densify_norm = nn.ModuleList(SparseBatchNorm2d(c) for c in widths)
        for norm in self.densify_norm:
            norm.mask_state = self.mask_state
        self.mask_tokens = nn.ParameterList(nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, c, 1, 1), std=0.02))
                                            for c in widths)
        self.densify_proj = nn.ModuleList(nn.Conv2d(c, dec[i], 1 if i == 0 else 3, padding=0 if i == 0 else 1)
                                          for i, c in enumerate(widths))
        self.decoder = nn.ModuleList(DecoderBlock(dec[i], dec[i + 1]) for i in range(5))
        self.to_pixels = nn.Conv2d(dec[5], 3, 1)

    def encoder(self):
        return self.backbone

    def fast_parts(self):
        return [self.decoder]  # the hooked, class-swapped backbone is left eager

    def views(self, image, meta):
        size = self.settings.image_size
        return {"image": v2.Compose([augment.crop(size, (0.67, 1.0)), v2.RandomHorizontalFlip()])(image)}

    def random_active(self, batch: int, side: int, device: torch.device) -> torch.Tensor:
        """(B, 1, f, f) bool with round(f²·(1 − mask_ratio)) positions kept per image."""
        keep = round(side * side * (1 - self.opts["mask_ratio"]))
        order = torch.rand(batch, side * side, device=device).argsort(dim=1)
        active = torch.zeros(batch, side * side, dtype=torch.bool, device=device)
        active.scatter_(1, order[:, :keep], True)
        return active.view(batch, 1, side, side)

    def forward(self, batch, progress):
        x = self.normalise(batch["image"])
        side = x.shape[-1] // DOWNSAMPLE
        self.mask_state.active = self.random_active(len(x), side, x.device)
        try:
            features = stage_outputs(self.backbone, x * self.mask_state.at(*x.shape[2:]).to(x.dtype))
            dense = self.densify(features[::-1])
        finally:
            self.mask_state.active, active = None, self.mask_state.active
        out = 0
        for i, block in enumerate(self.decoder):
            out = block(out + dense[i] if i < len(dense) else out)
        loss = losses.patch_normalised_mse(self.to_pixels(out), x, ~active[:, 0], DOWNSAMPLE)
        return loss, {"masked_mse": loss.detach()}

    def densify(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for feat, norm, token, proj in zip(features, self.densify_norm, self.mask_tokens, self.densify_proj):
            keep = self.mask_state.at(*feat.shape[2:])
            out.append(proj(torch.where(keep, norm(feat), token.to(feat.dtype))))
        return out

    def optimizers(self, recipe, batch_size):
        """The recipe's LAMB; the mask tokens join biases and norms in the group without weight decay."""
        tokens = frozenset(f"mask_tokens.{i}" for i in range(len(self.mask_tokens)))
        return [recipe_spec(split_groups(list(self.named_parameters()), recipe, tokens), recipe, batch_size)]


METHODS = {SparK.name: SparK}
