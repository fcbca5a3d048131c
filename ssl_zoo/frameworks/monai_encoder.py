"""A FlexibleUNet backbone with torchvision's ResNet layout, registered in MONAI's own backbone registry.

MONAI's FlexibleUNet backbones are MedicalNet ResNets: its "resnet50" has torchvision's layout (1x1 convolution +
BatchNorm shortcuts without bias), but its "resnet18" uses MedicalNet's parameter-free "type A" shortcut (zero
padding), which has no place for the shortcut convolution and BatchNorm of a torchvision ResNet-18. Importing this
module registers ``resnet18-torchvision``: MONAI's ``ResNetFeatures`` with ``shortcut_type="B"`` and
``bias_downsample=False``. ResNet-50 U-Nets use MONAI's own "resnet50" backbone.
"""

from __future__ import annotations

from monai.networks.blocks import BaseEncoder
from monai.networks.nets import FLEXUNET_BACKBONE
from monai.networks.nets.resnet import ResNet, ResNetFeatures, get_inplanes

from ..architectures.inflate import STEM_DEPTH, STEM_STRIDE

LAYOUTS = {"resnet18": ("basic", [2, 2, 2, 2], (64, 64, 128, 256, 512))}
SUFFIX = "-torchvision"


class TorchvisionResNetEncoder(ResNetFeatures, BaseEncoder):
    """MONAI's ResNet feature extractor (five feature maps) with torchvision's shortcuts, for FlexibleUNet."""

    def __init__(self, model_name: str, pretrained: bool = False, spatial_dims: int = 2, in_channels: int = 3) -> None:
        if pretrained:  # weights come from ssl_zoo's model folder, never from MONAI's MedicalNet download
            raise ValueError("load weights with ssl_zoo.load(..., framework='monai'); pretrained=True is not offered")
        block, layers, _ = LAYOUTS[model_name.removesuffix(SUFFIX)]
        ResNet.__init__(self, block=block, layers=layers, block_inplanes=get_inplanes(), spatial_dims=spatial_dims,
                        n_input_channels=in_channels, conv1_t_size=STEM_DEPTH, conv1_t_stride=STEM_STRIDE,
                        shortcut_type="B", feed_forward=False, bias_downsample=False)

    @classmethod
    def get_encoder_names(cls) -> list[str]:
        """The backbone names FlexibleUNet accepts for this encoder."""
        return [name + SUFFIX for name in LAYOUTS]

    @classmethod
    def get_encoder_parameters(cls) -> list[dict]:
        """The constructor arguments of each backbone (FlexibleUNet overrides the last three)."""
        return [{"model_name": name, "pretrained": False, "spatial_dims": 2, "in_channels": 3}
                for name in cls.get_encoder_names()]

    @classmethod
    def num_channels_per_output(cls) -> list[tuple[int, ...]]:
        """Channels of the five feature maps of each backbone."""
        return [channels for _, _, channels in LAYOUTS.values()]

    @classmethod
    def num_outputs(cls) -> list[int]:
        """Five feature maps for every backbone: the stem and the four stages."""
        return [5] * len(LAYOUTS)


FLEXUNET_BACKBONE.register_class(TorchvisionResNetEncoder)
