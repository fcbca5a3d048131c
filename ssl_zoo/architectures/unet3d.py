"""Models Genesis' 3-D U-Net (MrGiovanni/ModelsGenesis ``pytorch/unet3d.py``), with its exact state-dict keys.

Keys (106, as in the Models Genesis release): ``down_tr{64,128,256,512}.ops.{0,1}.{conv1,bn1}.*`` (channels
1→32→64, 64→64→128, 128→128→256, 256→256→512), ``up_tr{256,128,64}.up_conv.*`` (2x2x2 transposed convolutions)
and ``.ops.{0,1}.*``, and ``out_tr.final_conv.*`` (1x1x1, one output per label, sigmoid).

Input ``(N, 1, D1, D2, D3)``, each side divisible by 8 (three poolings); Models Genesis trained on 64x64x32 cubes.
A model folder keeps all 106 keys in ``model.safetensors``; ``config.json`` lists the parts
``encoder`` (``down_tr*``), ``decoder`` (``up_tr*``) and ``segmentation_head`` (``out_tr``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ENCODER_PREFIXES = ("down_tr64.", "down_tr128.", "down_tr256.", "down_tr512.")
HEAD_PREFIX = "out_tr."
NUM_FEATURES = 512


class ContBatchNorm3d(nn.BatchNorm3d):
    """BatchNorm that normalises with the batch's statistics in eval mode too, as Models Genesis does.

    The running statistics are kept (they are in the checkpoint) but never used, so outputs match upstream.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum,
                            self.eps)


class LUConv(nn.Module):
    """3x3x3 convolution, batch norm, ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = ContBatchNorm3d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))


def two_convs(in_channels: int, depth: int) -> nn.Sequential:
    """Upstream's encoder ``_make_nConv``: width 32*2^depth, then twice that."""
    width = 32 * 2 ** depth
    return nn.Sequential(LUConv(in_channels, width), LUConv(width, 2 * width))


class DownTransition(nn.Module):
    """Two convolutions, then a 2x max-pool except at the deepest level; returns (pooled, before pooling)."""

    def __init__(self, in_channels: int, depth: int) -> None:
        super().__init__()
        self.ops = two_convs(in_channels, depth)
        self.pool = depth < 3

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.ops(x)
        return (F.max_pool3d(skip, 2) if self.pool else skip), skip


class UpTransition(nn.Module):
    """Transposed convolution, concatenation with the skip connection, two convolutions."""

    def __init__(self, channels: int, depth: int) -> None:
        super().__init__()
        self.up_conv = nn.ConvTranspose3d(channels, channels, kernel_size=2, stride=2)
        width = 32 * 2 ** (depth + 1)  # the decoder's ``_make_nConv``: both convolutions this wide
        self.ops = nn.Sequential(LUConv(channels + channels // 2, width), LUConv(width, width))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.ops(torch.cat((self.up_conv(x), skip), 1))


class OutputTransition(nn.Module):
    """1x1x1 convolution to one channel per label, then a sigmoid (Models Genesis restores intensities in [0,1])."""

    def __init__(self, in_channels: int, labels: int) -> None:
        super().__init__()
        self.final_conv = nn.Conv3d(in_channels, labels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.final_conv(x))


class UNet3DEncoder(nn.Module):
    """The contracting half (``down_tr*``); forward gives pooled features ``(N, 512)``, or logits with a head."""

    def __init__(self, num_classes: int = 0) -> None:
        super().__init__()
        self.down_tr64 = DownTransition(1, 0)
        self.down_tr128 = DownTransition(64, 1)
        self.down_tr256 = DownTransition(128, 2)
        self.down_tr512 = DownTransition(256, 3)
        self.num_features = NUM_FEATURES
        self.fc = nn.Linear(NUM_FEATURES, num_classes) if num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The skip connections of the four levels, shallowest first (the last one is the bottleneck)."""
        skips = []
        for level in (self.down_tr64, self.down_tr128, self.down_tr256, self.down_tr512):
            x, skip = level(x)
            skips.append(skip)
        return skips

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x)[-1].mean(dim=(2, 3, 4)))


class UNet3D(UNet3DEncoder):
    """The whole Models Genesis network; forward gives ``(N, labels, D1, D2, D3)`` in [0,1]."""

    def __init__(self, labels: int = 1) -> None:
        super().__init__()
        self.up_tr256 = UpTransition(512, 2)
        self.up_tr128 = UpTransition(256, 1)
        self.up_tr64 = UpTransition(128, 0)
        self.out_tr = OutputTransition(64, labels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip64, skip128, skip256, bottom = self.forward_features(x)
        x = self.up_tr256(bottom, skip256)
        x = self.up_tr128(x, skip128)
        return self.out_tr(self.up_tr64(x, skip64))


def encoder_weights(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``down_tr*`` tensors of a UNet3D state dict."""
    return {k: v for k, v in weights.items() if k.startswith(ENCODER_PREFIXES)}
