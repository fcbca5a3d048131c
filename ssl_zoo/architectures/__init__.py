"""Build the empty target modules (timm) and state their exact key sets.

timm's ``resnet18``, ``resnet50`` and ``densenet121`` use torchvision's key names, so one converted file
serves torchvision, timm and ``timm.create_model("local-dir:...")`` alike.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import RegistryError


class ArchKind(enum.Enum):
    """What builds an architecture, which decides how ``load`` assembles it and what its card says."""

    TIMM = "timm"  # a timm backbone
    SMP_UNET = "smp-unet"  # a 2-D segmentation_models_pytorch U-Net (``unet.py``)
    UNET3D = "unet3d"  # Models Genesis' 3-D U-Net (``unet3d.py``)


@dataclass(frozen=True)
class ArchSpec:
    """What ssl_zoo needs to know about a target architecture.

    Attributes:
        name: The architecture name used in the registry and in ``config.json``.
        timm_name: The timm model that builds it.
        num_features: Width of the pooled features.
        classifier: Key prefix of the classification head.
        first_conv: Key prefix of the stem convolution (adapted for ``in_chans`` != 3).
        pool_size: Spatial size of the last feature map at 224x224.
        feature_cfg: Extra arguments timm passes to its feature wrapper for ``features_only``.
        kind: What builds it (``ArchKind``).
        encoder: For a U-Net, the architecture of its encoder (the backbone ``load`` gives).
        parts: What a model folder of this architecture holds, as ``config.json``'s ``ssl_zoo.parts`` lists it.
    """

    name: str
    timm_name: str
    num_features: int
    classifier: str
    first_conv: str
    pool_size: tuple[int, int] = (7, 7)
    feature_cfg: dict[str, Any] = field(default_factory=dict)
    kind: ArchKind = ArchKind.TIMM
    encoder: str = ""
    parts: tuple[str, ...] = ("backbone",)


BACKBONES = (
    ArchSpec("resnet50", "resnet50", 2048, "fc", "conv1"),
    ArchSpec("resnet18", "resnet18", 512, "fc", "conv1"),
    ArchSpec("densenet121", "densenet121", 1024, "classifier", "features.conv0",
             feature_cfg={"flatten_sequential": True}),
)
UNET_PARTS = ("encoder", "decoder", "segmentation_head")


def _unet_of(encoder: ArchSpec) -> ArchSpec:
    """The smp U-Net around ``encoder``; not a timm model: its name is what config.json records as "architecture"."""
    name = f"unet-{encoder.name}"
    return ArchSpec(name, name, encoder.num_features, "segmentation_head", f"encoder.{encoder.first_conv}",
                    kind=ArchKind.SMP_UNET, encoder=encoder.name, parts=UNET_PARTS)


ARCHS: dict[str, ArchSpec] = {
    **{spec.name: spec for spec in BACKBONES},
    **{f"unet-{spec.name}": _unet_of(spec) for spec in BACKBONES},  # DiRA, MAGICAL and U-Nets pre-trained here
    "unet3d": ArchSpec("unet3d", "unet3d", 512, "out_tr", "down_tr64.ops.0.conv1", pool_size=(8, 8, 4),
                       kind=ArchKind.UNET3D, parts=UNET_PARTS),
}


def get_arch(name: str) -> ArchSpec:
    """The spec of architecture ``name``.

    Raises:
        RegistryError: For an architecture ssl_zoo cannot build.
    """
    if name not in ARCHS:
        raise RegistryError(f"unsupported architecture {name!r}; supported: {sorted(ARCHS)}")
    return ARCHS[name]


def build_backbone(arch: str, *, in_chans: int = 3) -> nn.Module:
    """An empty (meta-device) head-less timm model: its tensors are filled by ``load_state_dict(assign=True)``.

    Building on the meta device skips random initialisation, which would cost more than reading the weights.
    """
    spec = get_arch(arch)
    if spec.kind is ArchKind.SMP_UNET:
        from .unet import build_unet

        with torch.device("meta"):
            return build_unet(spec.encoder, in_chans=in_chans)
    if spec.kind is ArchKind.UNET3D:
        from .unet3d import UNet3D

        with torch.device("meta"):
            return UNet3D()
    import timm

    with torch.device("meta"):
        return timm.create_model(spec.timm_name, pretrained=False, num_classes=0, in_chans=in_chans)


@functools.cache
def trunk_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Every key of the head-less model and its shape: the exact target of a conversion."""
    return {k: tuple(v.shape) for k, v in build_backbone(arch).state_dict().items()}


def expected_shapes(arch: str, tensors: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """The exact target of converting ``tensors``: ``trunk_shapes``, except that a U-Net's output layer has as
    many channels as the file's (the class count belongs to the task it was trained on, e.g. 3 for MedMNIST)."""
    shapes = dict(trunk_shapes(arch))
    head = {ArchKind.SMP_UNET: "segmentation_head.0.", ArchKind.UNET3D: "out_tr.final_conv."}.get(get_arch(arch).kind)
    for key in [k for k in shapes if head and k.startswith(head)]:
        if key in tensors and tensors[key].dim() == len(shapes[key]):
            shapes[key] = (tensors[key].shape[0], *shapes[key][1:])
    return shapes


def to_features_only(model: nn.Module, arch: str, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)) -> nn.Module:
    """Wrap a loaded model so that forward returns the feature maps of each stage (for dense tasks)."""
    from timm.models import FeatureListNet

    return FeatureListNet(model, out_indices=out_indices, **get_arch(arch).feature_cfg)
