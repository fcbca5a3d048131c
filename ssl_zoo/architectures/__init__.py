"""Build the empty target modules (timm) and state their exact key sets.

timm's ``resnet18``, ``resnet50`` and ``densenet121`` use torchvision's key names, so one converted file
serves torchvision, timm and ``timm.create_model("local-dir:...")`` alike.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import RegistryError


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
    """

    name: str
    timm_name: str
    num_features: int
    classifier: str
    first_conv: str
    pool_size: tuple[int, int] = (7, 7)
    feature_cfg: dict[str, Any] = field(default_factory=dict)


ARCHS: dict[str, ArchSpec] = {
    "resnet50": ArchSpec("resnet50", "resnet50", 2048, "fc", "conv1"),
    "resnet18": ArchSpec("resnet18", "resnet18", 512, "fc", "conv1"),
    "densenet121": ArchSpec(
        "densenet121", "densenet121", 1024, "classifier", "features.conv0", feature_cfg={"flatten_sequential": True}
    ),
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
    import timm

    with torch.device("meta"):
        return timm.create_model(spec.timm_name, pretrained=False, num_classes=0, in_chans=in_chans)


@functools.cache
def trunk_shapes(arch: str) -> dict[str, tuple[int, ...]]:
    """Every key of the head-less model and its shape: the exact target of a conversion."""
    return {k: tuple(v.shape) for k, v in build_backbone(arch).state_dict().items()}


def to_features_only(model: nn.Module, arch: str, out_indices: tuple[int, ...] = (0, 1, 2, 3, 4)) -> nn.Module:
    """Wrap a loaded model so that forward returns the feature maps of each stage (for dense tasks)."""
    from timm.models import FeatureListNet

    return FeatureListNet(model, out_indices=out_indices, **get_arch(arch).feature_cfg)
