"""What ``ssl_zoo.load(..., task=...)`` builds for architectures that are not plain timm backbones.

- ``task="classification"`` (default): a backbone. A 2-D U-Net gives its encoder (a timm ResNet with the
  encoder's weights), a 3-D UNet3D its contracting half (pooled features ``(N, 512)``).
- ``task="segmentation"``: an ``smp.Unet`` (encoder, decoder and head from a U-Net folder; for a backbone entry,
  the backbone as encoder and a fresh decoder), or the whole UNet3D.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import OptionError, UnknownTaskError
from . import ArchKind, get_arch

TASKS = ("classification", "segmentation")


def check_task(task: str) -> None:
    """Raise ``UnknownTaskError`` unless ``task`` is one of ``TASKS``."""
    if task not in TASKS:
        raise UnknownTaskError(f"unknown task {task!r}: pass task='classification' or task='segmentation'")


def check_options(kind: ArchKind, task: str, *, features_only: bool, exact: bool | None, num_classes: int,
                  classes: int | None, in_chans: int | None = None) -> None:
    """Raise ``OptionError`` for a ``load`` option that cannot apply to an architecture of ``kind`` and ``task``.

    Raises:
        OptionError: Naming the option, why it cannot apply and what to pass instead.
    """
    builds = "a segmentation network" if task == "segmentation" else "Models Genesis' UNet3D encoder"
    segmenting = task == "segmentation" or kind is ArchKind.UNET3D
    reasons = [
        ("features_only", features_only and segmenting,
         f"{builds} has no timm feature wrapper: load the backbone (task='classification')"),
        ("exact", exact is not None and segmenting,
         f"TF 'SAME' padding is applied to timm backbones only, not to {builds}: drop exact="),
        ("num_classes", bool(num_classes) and task == "segmentation",
         "a segmentation network has no classification head: pass classes= for its output channels"),
        ("num_classes", bool(num_classes) and features_only,
         "features_only=True gives the stages' feature maps, which have no head: drop one of the two"),
        ("num_classes", num_classes < 0, f"got {num_classes}: pass 0 (pooled features) or the number of classes"),
        ("in_chans", in_chans is not None and in_chans < 1, f"got {in_chans}: pass 1 (grayscale) or 3 (RGB)"),
        ("in_chans", kind is ArchKind.UNET3D and in_chans not in (None, 1),
         f"got {in_chans}: Models Genesis' UNet3D takes one-channel CT cubes (N, 1, D, H, W); drop in_chans"),
        ("classes", classes is not None and classes < 1, f"got {classes}: pass 1 or more output channels"),
        ("classes", classes is not None and task == "classification",
         "classes= sets a segmentation head's channels: pass num_classes= for a classification head, "
         "or task='segmentation'"),
    ]
    for option, bad, why in reasons:
        if bad:
            raise OptionError(f"{option} cannot apply with task={task!r}: {why}")


def backbone_part(arch: str, weights: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """The backbone architecture and tensors: a U-Net's encoder (``encoder.`` stripped), anything else unchanged."""
    spec = get_arch(arch)
    if spec.kind is not ArchKind.SMP_UNET:
        return arch, weights
    from .unet import part

    return spec.encoder, part(weights, "encoder")


def segmentation_model(arch: str, weights: dict[str, torch.Tensor], *, classes: int, in_chans: int) -> nn.Module:
    """An ``smp.Unet`` for ``classes`` outputs: from a U-Net folder's parts, or around a backbone's weights."""
    from .unet import segmentation_unet

    spec = get_arch(arch)
    unet_file = spec.kind is ArchKind.SMP_UNET
    encoder = spec.encoder if unet_file else spec.name
    return segmentation_unet(encoder, weights, classes=classes, in_chans=in_chans, unet_file=unet_file)


def unet3d_model(weights: dict[str, torch.Tensor], *, task: str, classes: int, num_classes: int) -> nn.Module:
    """Models Genesis' UNet3D (segmentation) or its encoder (classification), in eval mode.

    The file's output layer is kept when ``classes`` matches it; a new classification head (``num_classes``) and
    a different output layer are freshly initialised.
    """
    from .unet3d import HEAD_PREFIX, UNet3D, UNet3DEncoder, encoder_weights

    if task == "classification":
        model: nn.Module = UNet3DEncoder(num_classes)
        model.load_state_dict({**encoder_weights(weights), **_state(model.fc, "fc.")}, strict=True)
        return model.eval()
    model = UNet3D(classes)
    keep = {k: v for k, v in weights.items() if not k.startswith(HEAD_PREFIX) or v.shape[0] == classes}
    model.load_state_dict({**_state(model.out_tr, HEAD_PREFIX), **keep}, strict=True)
    return model.eval()


def _state(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """A freshly initialised module's own tensors under ``prefix`` (so the strict load covers every key)."""
    return {prefix + k: v for k, v in module.state_dict().items()}
