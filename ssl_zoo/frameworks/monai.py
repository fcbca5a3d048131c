"""``ssl_zoo.load(name, framework="monai")``: the MONAI network of an entry's architecture, its weights loaded strictly.

Which MONAI network (``monai.networks.nets``):

- ResNet-18/50 backbones: ``ResNet`` (7x7/2 stem, torchvision's 1x1 convolution + BatchNorm shortcuts without bias);
  its layer names are torchvision's, so its key map is empty.
- DenseNet-121: ``DenseNet121``; each dense layer is a ``Sequential`` named ``layers`` (``...denselayer1.layers.conv1``
  for torchvision's ``...denselayer1.conv1``). With ``num_classes=0`` its last linear layer is an ``Identity``, so
  both networks give pooled features, as timm's do.
- ``task="segmentation"`` (U-Net entries, or a ResNet backbone entry): ``FlexibleUNet`` with the ResNet as its
  encoder, MONAI's only U-Net built around a classification encoder (``BasicUNet``, ``UNet``, ``DynUNet`` have
  their own). Its ``UNetDecoder`` is modelled on smp's but halves the channels with a convolution before each
  upsampling, so a U-Net entry's smp decoder has no place in it: the encoder is loaded, decoder and head start
  fresh (a warning says so). ResNet-18 uses ``monai_encoder.py``'s backbone: MONAI's "resnet18" has other shortcuts.
- ``spatial_dims=3``: the same networks in 3-D, filled with the inflated weights (``architectures/inflate.py``).

Options are checked as for timm (``architectures.tasks.check_options``); ``exact`` (TF "SAME" padding of
SimCLR/BYOL, applied by layer name as on timm's ResNet) is for 2-D backbones only: a 3-D network has no
source-framework output to match.

Not built: DenseNet-121 U-Nets (FlexibleUNet has no DenseNet encoder) and Models Genesis' UNet3D (no MONAI
counterpart); both load with the default ``framework="timm"``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..architectures import ArchKind, get_arch
from ..architectures.inflate import INFLATION_RULE, STEM_DEPTH, STEM_STRIDE, inflate_state_dict
from ..architectures.tasks import backbone_part, check_options
from ..architectures.tf_same import apply_same_padding
from ..converters.rules import RenameRegex, apply_rules
from ..errors import ConversionError, FrameworkError, OptionError, SslZooWarning
from ..loading import adapt_stem, folder_arch
from ..modelfolder.files import read_weights
from . import require_monai

RESNETS = {"resnet18": ("basic", [2, 2, 2, 2]), "resnet50": ("bottleneck", [3, 4, 6, 3])}
FLEX_BACKBONES = {"resnet50": "resnet50", "resnet18": "resnet18-torchvision"}

# torchvision/timm key names -> MONAI's, per network: rule lists as the converters' (converters/rules.py)
KEY_RULES: dict[str, tuple[RenameRegex, ...]] = {
    "ResNet": (),  # MONAI's ResNet names every layer as torchvision does
    "DenseNet121": (RenameRegex(r"(\.denselayer\d+)\.(?=(?:norm|conv)[12]\.)", r"\1.layers.",
                                "MONAI's dense layer keeps its layers in a Sequential named layers"),),
    "FlexibleUNet": (RenameRegex(r"^", "encoder.", "the ResNet is FlexibleUNet's encoder"),),
}
ABOUT = ("inflated", "source", "preprocessing_record")  # what a model's record says beside its network's arguments
# Parts that are not in the file: freshly initialised, and named so the strict load still covers every key.
FRESH_PREFIXES = {"ResNet": ("fc.",), "DenseNet121": ("class_layers.out.",),
                  "FlexibleUNet": ("decoder.", "segmentation_head.")}


@dataclass(frozen=True)
class MonaiOptions:
    """What ``ssl_zoo.load`` asked for; see its docstring."""

    num_classes: int = 0
    in_chans: int = 3
    task: str = "classification"
    classes: int | None = None
    spatial_dims: int = 2
    exact: bool | None = None
    features_only: bool = False


def network_record(arch: str, options: MonaiOptions) -> dict[str, Any]:
    """Which MONAI network to build and its constructor arguments (JSON: a saved folder rebuilds it from this).

    Raises:
        FrameworkError: For a DenseNet U-Net: FlexibleUNet has no DenseNet encoder.
    """
    spec = get_arch(arch)
    backbone = spec.encoder or spec.name
    dims, chans = options.spatial_dims, options.in_chans
    if options.task == "segmentation":
        if backbone not in FLEX_BACKBONES:
            raise FrameworkError(f"MONAI's FlexibleUNet has no {backbone} encoder: load it with framework='timm' "
                                 "(an smp.Unet), or as a classification backbone")
        return {"network": "FlexibleUNet", "kwargs": {"in_channels": chans, "out_channels": options.classes or 1,
                "backbone": FLEX_BACKBONES[backbone], "spatial_dims": dims, "pretrained": False}}
    if backbone == "densenet121":
        return {"network": "DenseNet121", "pooled_features": not options.num_classes,
                "kwargs": {"spatial_dims": dims, "in_channels": chans, "out_channels": options.num_classes or 1}}
    block, layers = RESNETS[backbone]
    head = {"num_classes": options.num_classes} if options.num_classes else {}
    return {"network": "ResNet", "kwargs": {"block": block, "layers": layers, "block_inplanes": [64, 128, 256, 512],
            "spatial_dims": dims, "n_input_channels": chans, "conv1_t_size": STEM_DEPTH,
            "conv1_t_stride": STEM_STRIDE, "bias_downsample": False, "feed_forward": bool(head), **head}}


def build_network(record: dict[str, Any]) -> nn.Module:
    """A freshly initialised MONAI network from its record (``network_record``, or a saved folder's).

    Raises:
        MissingExtraError: When MONAI is not installed.
    """
    monai = require_monai()
    if record["network"] == "FlexibleUNet":
        from . import monai_encoder  # noqa: F401  registers the torchvision-layout ResNet-18 backbone

    model = getattr(monai.networks.nets, record["network"])(**record["kwargs"])
    if record.get("pooled_features"):
        model.class_layers.out = nn.Identity()  # pooled features, as timm's num_classes=0
    return apply_same_padding(model, record.get("same_padding_layers", ()))


def monai_weights(arch: str, weights: dict[str, torch.Tensor], record: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The folder's tensors under the MONAI network's key names, inflated when it is 3-D."""
    _, tensors = backbone_part(arch, weights)  # a U-Net's encoder, a backbone unchanged
    tensors, _ = apply_rules(tensors, KEY_RULES[record["network"]], get_arch(arch).classifier)
    return inflate_state_dict(tensors) if record["kwargs"]["spatial_dims"] == 3 else tensors


def load_strictly(model: nn.Module, tensors: dict[str, torch.Tensor], network: str) -> nn.Module:
    """Load ``tensors`` with ``strict=True``; the parts the file cannot hold keep their fresh initialisation.

    Raises:
        ConversionError: When a key is missing, unexpected or of another shape.
    """
    fresh = {k: v for k, v in model.state_dict().items() if k.startswith(FRESH_PREFIXES.get(network, ()))}
    try:
        model.load_state_dict({**fresh, **tensors}, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConversionError(f"the weights do not fit MONAI's {network} ({first}): load with framework='timm' "
                              "and report this as a bug") from None
    return model


def check_monai_options(kind: ArchKind, options: MonaiOptions) -> None:
    """``load``'s option checks (``check_options``), plus what MONAI networks cannot take.

    Raises:
        FrameworkError: For Models Genesis' UNet3D, which has no MONAI counterpart.
        OptionError: For ``features_only`` (timm's wrapper) or ``exact`` with a 3-D network.
    """
    if kind is ArchKind.UNET3D:
        raise FrameworkError("Models Genesis' UNet3D has no MONAI counterpart: load it with framework='timm'")
    check_options(kind, options.task, features_only=options.features_only, exact=options.exact,
                  num_classes=options.num_classes, classes=options.classes, in_chans=options.in_chans)
    if options.features_only:
        raise OptionError("features_only builds timm's feature wrapper: use framework='timm', or MONAI's "
                          "FlexibleUNet with task='segmentation'")
    if options.exact is not None and options.spatial_dims == 3:
        raise OptionError("exact (TF 'SAME' padding) applies to 2-D networks: a 3-D network has no source to "
                          "match; drop exact=")


def load_monai(folder: Path, config: dict[str, Any], options: MonaiOptions) -> nn.Module:
    """``ssl_zoo.load(..., framework="monai")`` on a model folder: a converted one, or one ``save_monai`` wrote.

    Raises:
        FrameworkError, OptionError, ConversionError, MissingExtraError.
    """
    require_monai()  # before any work
    if config.get("ssl_zoo", {}).get("framework") == "monai":
        return saved_model(folder, config, options)
    arch = folder_arch(config, folder)
    check_monai_options(get_arch(arch).kind, options)
    weights = read_weights(folder)
    if options.in_chans != 3:
        weights = adapt_stem(weights, arch, options.in_chans)
    return monai_model(folder, config, arch, weights, options)


def monai_model(folder: Path, config: dict[str, Any], arch: str, weights: dict[str, torch.Tensor],
                options: MonaiOptions) -> nn.Module:
    """The MONAI network of a model folder with its weights, in eval mode (see the module doc).

    Args:
        folder: The model folder.
        config: Its ``config.json``.
        arch: Its ssl_zoo architecture.
        weights: Its tensors, the stem already adapted to ``options.in_chans``.
        options: What ``load`` asked for.

    Returns:
        The network, with ``ssl_zoo_record`` (what was built, from what) for ``save_monai``.

    Raises:
        FrameworkError, ConversionError, MissingExtraError.
    """
    record = network_record(arch, options)
    zoo = config.get("ssl_zoo", {})
    if options.exact is not False and record["network"] != "FlexibleUNet" and options.spatial_dims == 2:
        # TF "SAME" padding of SimCLR/BYOL backbones, applied by layer name as on timm's model
        record["same_padding_layers"] = list(zoo.get("parity", {}).get("same_padding_layers", ()))
    model = load_strictly(build_network(record), monai_weights(arch, weights, record), record["network"])
    if options.task == "segmentation" and any(k.startswith("decoder.") for k in weights):
        warnings.warn(f"{folder.name}: MONAI's FlexibleUNet decoder differs from the U-Net's (smp) decoder: only the "
                      "encoder is pre-trained; load with framework='timm' to keep the decoder", SslZooWarning,
                      stacklevel=3)
    inflated = INFLATION_RULE if options.spatial_dims == 3 else None
    model.ssl_zoo_record = {**record, "arch": arch, "inflated": inflated, "source": source_facts(zoo),
                            "preprocessing_record": zoo.get("preprocessing_record")}
    return model.eval()


def source_facts(zoo: dict[str, Any]) -> dict[str, Any]:
    """What a saved MONAI folder states about the model folder its weights came from."""
    keys = ("name", "method", "source_url", "weights_sha256", "license", "non_commercial")
    return {k: zoo[k] for k in keys if k in zoo}


def saved_model(folder: Path, config: dict[str, Any], options: MonaiOptions) -> nn.Module:
    """A MONAI network saved by ``save_monai``: rebuilt from its record and loaded strictly, in eval mode.

    Raises:
        FrameworkError: When ``options`` ask for another network than the saved one.
    """
    record = config["ssl_zoo"]["monai"]
    dims = record["kwargs"]["spatial_dims"]
    if replace(options, exact=None, spatial_dims=2) != MonaiOptions() or options.spatial_dims not in (2, dims):
        raise FrameworkError(f"{folder} holds a saved {record['network']}: it loads as saved; leave num_classes, "
                             "in_chans, task, classes and spatial_dims unset")
    model = load_strictly(build_network(record), read_weights(folder), "")
    model.ssl_zoo_record = {**record, **{k: config["ssl_zoo"].get(k) for k in ABOUT}}
    return model.eval()
