"""2-D U-Nets as ``segmentation_models_pytorch.Unet``, and every backbone as the encoder of one.

U-Net model folder format (DiRA, MAGICAL, and U-Nets ssl_zoo pre-trains itself):

- ``model.safetensors``: one flat state dict with smp's key names, float32 (``num_batches_tracked`` int64):
  ``encoder.*`` (the torchvision ResNet trunk without ``fc``: ``encoder.conv1.weight``, ``encoder.layer1.0...``),
  ``decoder.blocks.{0..4}.conv{1,2}.{0,1}.*`` (Conv2d without bias, BatchNorm; smp's default decoder channels
  256, 128, 64, 32, 16, no attention, no center block) and ``segmentation_head.0.{weight,bias}`` (3x3 convolution
  to ``classes`` channels). For ResNet-50 and one class: 380 keys.
- ``config.json``: ``"architecture": "unet-resnet50"`` (the ssl_zoo architecture name; timm cannot build it) and
  ``ssl_zoo.parts``: the parts present, ``["encoder", "decoder", "segmentation_head"]``. The class count is the
  first dimension of ``segmentation_head.0.weight``.

A folder that only has some parts (say, encoder and decoder) lists only those; loading gives the missing parts a
fresh initialisation.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConversionError
from ..extras import extra_imports

PARTS = ("encoder", "decoder", "segmentation_head")
HEAD_WEIGHT = "segmentation_head.0.weight"


def build_unet(encoder: str, *, classes: int = 1, in_chans: int = 3) -> nn.Module:
    """A randomly initialised ``smp.Unet`` with a timm/torchvision-named ``encoder`` (resnet18/50, densenet121)."""
    with extra_imports():
        import segmentation_models_pytorch as smp

    return smp.Unet(encoder, encoder_weights=None, classes=classes, in_channels=in_chans)


def file_classes(tensors: dict[str, torch.Tensor], default: int = 1) -> int:
    """The class count a U-Net state dict was trained for (its head's output channels)."""
    head = tensors.get(HEAD_WEIGHT)
    return int(head.shape[0]) if head is not None else default


def parts_present(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Which of encoder, decoder and segmentation head a U-Net state dict holds."""
    return [p for p in PARTS if any(k.startswith(p + ".") for k in tensors)]


def part(tensors: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """The tensors of one part, with its prefix stripped."""
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def segmentation_unet(encoder: str, weights: dict[str, torch.Tensor], *, classes: int, in_chans: int,
                      unet_file: bool) -> nn.Module:
    """An ``smp.Unet`` filled from ``weights``, in eval mode.

    Args:
        encoder: The encoder architecture (``resnet50``...).
        weights: A U-Net state dict (``unet_file``) or a backbone's (the encoder's keys without a prefix).
        classes: Output channels; the file's head is kept only when it has this many.
        in_chans: Input channels; the stem is already adapted by the caller.
        unet_file: Whether ``weights`` hold U-Net parts; otherwise decoder and head are fresh.

    Raises:
        ConversionError: When a part of the file does not fit (a different encoder).
    """
    model = build_unet(encoder, classes=classes, in_chans=in_chans)
    parts = {p: part(weights, p) for p in parts_present(weights)} if unet_file else {"encoder": weights}
    if file_classes(weights, classes) != classes:
        parts.pop("segmentation_head", None)  # another task's head: the new one stays freshly initialised
    for name, tensors in parts.items():
        try:
            getattr(model, name).load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConversionError(f"the {name} weights do not fit a U-Net with a {encoder} encoder ({first}): "
                                  "load it with the encoder it was trained with") from None
    return model.eval()
