"""Networks and distributed helpers the methods share: backbones, U-Nets, heads, EMA, gathers.

Backbones are timm models (``num_classes=0``), whose key names are torchvision's, so what a method trains is
written to a model folder without renaming. U-Nets are ``segmentation_models_pytorch.Unet`` whose encoder is
the same torchvision-keyed ResNet.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def backbone(arch: str, drop_path_rate: float = 0.0) -> nn.Module:
    """A randomly initialised, head-less timm backbone: forward gives pooled features (N, num_features)."""
    import timm

    return timm.create_model(arch, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate)


def unet(arch: str, out_channels: int) -> nn.Module:
    """A randomly initialised smp U-Net with an ``arch`` encoder (``architectures.unet``'s folder format)."""
    from ..architectures.unet import build_unet

    return build_unet(arch, classes=out_channels)


def mlp(dims: list[int], *, batch_norm: bool = False, last_bn: bool = False) -> nn.Sequential:
    """Linear layers with ReLU between them (and BN before each ReLU when ``batch_norm``)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        layers.append(nn.Linear(d_in, d_out, bias=not (batch_norm and (not last or last_bn))))
        if not last:
            layers += [nn.BatchNorm1d(d_out), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(nn.BatchNorm1d(d_out, affine=False))
    return nn.Sequential(*layers)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy that receives no gradient: MoCo's key encoder, BYOL's target network."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """θ_target ← m θ_target + (1 − m) θ_online, for parameters; buffers (BN statistics) are copied."""
    t_params = [p for p in target.parameters()]
    o_params = [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(t_params, o_params, 1 - momentum)
    for t_buf, o_buf in zip(target.buffers(), online.buffers()):
        t_buf.copy_(o_buf)


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process (no gradient): MoCo keys for the queue."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process, gradients flowing back to each: SimCLR/Barlow global batch."""
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()))


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over processes (for Sinkhorn); the tensor itself in a single process."""
    if world_size() > 1:
        dist.all_reduce(x)
    return x


@torch.no_grad()
def shuffled_forward(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """MoCo's shuffle-BN: the key encoder sees a batch mixed across processes, so BN cannot leak the pairing.

    Under DDP the global batch is permuted (one permutation, broadcast from rank 0), each process encodes its
    slice and the outputs are put back in order. In a single process, BN statistics are over the whole batch
    whatever the order, so there is nothing to shuffle.
    """
    if world_size() == 1:
        return encoder(x)
    everything = gather_no_grad(x)
    perm = torch.randperm(len(everything), device=x.device)
    dist.broadcast(perm, src=0)
    rank, n = dist.get_rank(), len(x)
    mine = perm[rank * n:(rank + 1) * n]
    out = gather_no_grad(encoder(everything[mine]))
    return out[torch.argsort(perm)][rank * n:(rank + 1) * n]


class Normalise(nn.Module):
    """(x − mean) / std per channel, as the model folder's ``pretrained_cfg`` records."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def pooled(feature_map: torch.Tensor) -> torch.Tensor:
    """Global average pooling to (N, C): the projection input of U-Net methods, for any spatial size."""
    return feature_map.mean(dim=(2, 3))


def unet_forward(net: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The encoder's feature maps and the U-Net's output (logits) for ``x``, in one pass."""
    features = net.encoder(x)
    return features, net.segmentation_head(net.decoder(features))


def decoder_until(decoder: nn.Module, features: list[torch.Tensor], blocks: int) -> torch.Tensor:
    """The output of the first ``blocks`` blocks of an smp ``UnetDecoder`` (its forward, stopped early)."""
    shapes = [f.shape[2:] for f in features][::-1]
    deep = features[1:][::-1]
    x = decoder.center(deep[0])
    for i, block in enumerate(decoder.blocks[:blocks]):
        skip = deep[1:][i] if i < len(deep) - 1 else None
        x = block(x, *shapes[i + 1], skip_connection=skip)
    return x


class PatchDiscriminator(nn.Module):
    """DiRA's PatchGAN discriminator on 1-channel images (strides 2, 2, 2, 1, 1; instance norm after the first)."""

    def __init__(self, channels: int = 1):
        super().__init__()
        widths, strides = [channels, 64, 128, 256, 512], [2, 2, 2, 1]
        layers: list[nn.Module] = []
        for i, stride in enumerate(strides):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, stride, 1))
            if i:
                layers.append(nn.InstanceNorm2d(widths[i + 1]))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers.append(nn.Conv2d(512, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class KeyQueue(nn.Module):
    """MoCo's FIFO of negative keys (``size`` x ``dim``, L2-normalised), saved with the checkpoint.

    ``hold`` keeps the current batch's keys; ``push`` (after the optimiser step, when the loss no longer needs
    the old queue) writes the keys of every process at the pointer, wrapping around.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self._held: torch.Tensor | None = None

    def negatives(self) -> torch.Tensor:
        """A copy for the loss: ``push`` writes the buffer in place while autograd may still need it."""
        return self.keys.clone()

    def hold(self, keys: torch.Tensor) -> None:
        self._held = keys.detach().float()

    @torch.no_grad()
    def push(self) -> None:
        if self._held is None:
            return
        keys = F.normalize(gather_no_grad(self._held), dim=1)
        rows = (self.pointer + torch.arange(len(keys), device=keys.device)) % len(self.keys)
        self.keys[rows] = keys.to(self.keys.dtype)
        self.pointer.copy_((self.pointer + len(keys)) % len(self.keys))
        self._held = None
