"""TensorFlow's "SAME" padding for the layers that used it upstream, without renaming any module or key.

TF "SAME" pads ``total = max((ceil(n/s) - 1) * s + k - n, 0)`` split ``total // 2`` before and the rest after,
so on an even-sized map a stride-2 layer pads (0, 1) where torch's symmetric padding pads (1, 1): the windows
shift by one pixel and the features differ by ~1e-2 (SimCLR) to ~7e-2 (BYOL) relative. The subclasses here pad exactly as TF does and are swapped into a built model
by changing the class of the existing module, so its parameters, names and state-dict keys stay torchvision's.
"""

from __future__ import annotations

import math
from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SAME_PADDING_LAYERS", "TfSameConv2d", "TfSameMaxPool2d", "apply_same_padding", "same_padding_layers",
           "tf_same_pads"]

# Which layers of the torchvision ResNet-50 padded "SAME" in the source framework, by converter family.
SAME_PADDING_LAYERS: Final[dict[str, tuple[str, ...]]] = {
    # SimCLR pads its convolutions explicitly (= torchvision); only the stem max-pool is SAME
    "simclr": ("maxpool",),
    # Haiku pads every layer SAME; it differs from torch on the strided ones (1x1/2 shortcuts need no padding)
    "byol": ("conv1", "maxpool", "layer2.0.conv2", "layer3.0.conv2", "layer4.0.conv2"),
}


def same_padding_layers(family: str) -> tuple[str, ...]:
    """The module names that need TF "SAME" padding for checkpoints of converter ``family`` (empty if none)."""
    return SAME_PADDING_LAYERS.get(family, ())


def tf_same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one spatial dimension of ``size`` under TF "SAME"."""
    effective = (kernel - 1) * dilation + 1
    total = max((math.ceil(size / stride) - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _pad_like_tf(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int],
                 value: float) -> torch.Tensor:
    top, bottom = tf_same_pads(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = tf_same_pads(x.shape[-1], kernel[1], stride[1], dilation[1])
    return F.pad(x, (left, right, top, bottom), value=value) if top or bottom or left or right else x


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (value[0], value[1])


class TfSameConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose padding is computed from the input size as TF "SAME" does (its own padding ignored)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _pad_like_tf(x, _pair(self.kernel_size), _pair(self.stride), _pair(self.dilation), 0.0)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class TfSameMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` padded as TF "SAME" does; padded cells never win (-inf), as in TF."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = _pair(self.kernel_size), _pair(self.stride or self.kernel_size)
        x = _pad_like_tf(x, kernel, stride, _pair(self.dilation), float("-inf"))
        return F.max_pool2d(x, kernel, stride, 0, self.dilation, self.ceil_mode)


_SAME_CLASSES: Final = {nn.Conv2d: TfSameConv2d, nn.MaxPool2d: TfSameMaxPool2d}


def apply_same_padding(model: nn.Module, layers: tuple[str, ...] | list[str]) -> nn.Module:
    """Make the named modules of ``model`` pad as TF "SAME" does, in place; names and keys do not change.

    Args:
        model: A built torchvision/timm model.
        layers: Module names (``"maxpool"``, ``"layer2.0.conv2"``); see :data:`SAME_PADDING_LAYERS`.

    Returns:
        ``model`` itself.

    Raises:
        ValueError: If a name is not a ``Conv2d`` / ``MaxPool2d`` of the model.

    Example:
        >>> model = apply_same_padding(timm.create_model("resnet50"), same_padding_layers("simclr"))  # doctest: +SKIP
        >>> type(model.maxpool).__name__
        'TfSameMaxPool2d'
    """
    modules = dict(model.named_modules())
    for name in layers:
        module = modules.get(name)
        same = next((s for base, s in _SAME_CLASSES.items() if type(module) in (base, s)), None)
        if same is None:
            raise ValueError(f"{name!r} is not a Conv2d or MaxPool2d of this model; cannot give it TF SAME padding")
        module.__class__ = same  # same attributes and parameters, only forward differs
    return model


def plain_model_difference(arch: str, tensors: dict[str, torch.Tensor], layers: tuple[str, ...],
                           size: int = 224, seed: int = 0) -> float:
    """How far the plain torch model is from the TF-padded one on these weights: max|diff| / max|exact|.

    Measured on the converted weights themselves (pooled features of one seeded [0,1] image), so the model
    card can state what ``exact=False`` costs for this very checkpoint.
    """
    from . import build_backbone

    models = []
    for exact in (False, True):
        model = build_backbone(arch)
        model.load_state_dict(tensors, strict=True, assign=True)
        models.append(apply_same_padding(model, layers if exact else ()).eval())
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        plain, exact = (m(x) for m in models)
    return float((plain - exact).abs().max() / exact.abs().max())


def parity_facts(family: str, arch: str, tensors: dict[str, torch.Tensor]) -> dict:
    """The ``parity`` block of ``config.json`` for a converter family: which layers pad "SAME" and what
    the plain model loses (empty when the family needs no TF padding)."""
    layers = same_padding_layers(family)
    if not layers:
        return {}
    return {"same_padding_layers": list(layers),
            "plain_model_rel_diff_224": float(f"{plain_model_difference(arch, tensors, layers):.3g}"),
            "source_framework_rel_diff_bound": 1e-4}
