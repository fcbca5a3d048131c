"""The user path: a name or a model folder in, a ready ``torch.nn.Module`` or state dict out."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .architectures import ARCHS, ArchKind, build_backbone, get_arch, to_features_only
from .architectures.tasks import backbone_part, check_options, check_task, segmentation_model, unet3d_model
from .architectures.tf_same import apply_same_padding
from .errors import ModelFolderError
from .frameworks import check_framework
from .guard import attach_guard, guard_enabled
from .modelfolder.files import read_config, read_weights, verify_folder
from .registry import get_entry
from .resolve import RefKind, reference_kind, resolve_folder


def folder_arch(config: dict, folder: Path) -> str:
    """The ssl_zoo architecture name of a model folder, from its ``config.json``."""
    timm_name = config.get("architecture")
    for spec in ARCHS.values():
        if spec.timm_name == timm_name:
            return spec.name
    raise ModelFolderError(f"{folder}: architecture {timm_name!r} is not one ssl_zoo builds; load it with timm")


def load_state_dict(name_or_path: str | Path, *, progress: bool = True,
                    verify: bool = False) -> dict[str, torch.Tensor]:
    """The converted backbone tensors, under torchvision/timm key names.

    Args:
        name_or_path: A registry name (``"moco-v2"``), ``"hf-hub:ORG/REPO[@REV]"``, ``"local-dir:PATH"`` or a
            model folder path.
        progress: Show download progress when the entry has to be pulled.
        verify: Re-hash ``model.safetensors`` against ``config.json`` first (also ``SSL_ZOO_VERIFY=1``); the
            cheap checks (recorded size, header) run on every load.

    Returns:
        ``{key: tensor}`` on CPU; float32, with ``num_batches_tracked`` as int64.

    Raises:
        UnknownModelError, DownloadError, ConversionError, ModelFolderError.

    Example:
        >>> sd = load_state_dict("moco-v2")
        >>> sd["conv1.weight"].shape
        torch.Size([64, 3, 7, 7])
    """
    folder = resolve_folder(name_or_path, progress=progress)
    return read_weights(folder, verify=verify)


def load(
    name_or_path: str | Path,
    *,
    num_classes: int = 0,
    in_chans: int | None = None,
    features_only: bool = False,
    progress: bool = True,
    exact: bool | None = None,
    task: str = "classification",
    classes: int | None = None,
    framework: str = "timm",
    spatial_dims: int = 2,
    guard: bool = True,
    verify: bool = False,
) -> nn.Module:
    """A pre-trained model in eval mode, pulled and converted on first use.

    Args:
        name_or_path: A registry name (``"moco-v2"``), ``"hf-hub:ORG/REPO[@REV]"``, ``"local-dir:PATH"`` or a
            model folder path.
        num_classes: 0 returns the backbone whose forward gives pooled features ``(N, num_features)``;
            otherwise a new, randomly initialised linear head with this many outputs is added.
        in_chans: Input channels (default 3); for 1 (grayscale X-rays) the stem convolution is summed over RGB as
            timm does. Models Genesis' UNet3D takes one channel: another explicit value is an ``OptionError``.
        features_only: Return a model whose forward gives the feature map of each stage (dense tasks).
        progress: Show download progress when the entry has to be pulled.
        exact: For weights from TensorFlow/Haiku (SimCLR, BYOL), pad the layers that used TF "SAME" padding
            as the source did, so features match the original (the default for a backbone); False gives the
            plain timm model (the one timm ``local-dir:`` builds), which differs by the amount the model card
            states. Backbones only.
        task: "classification" (a backbone; a U-Net gives its encoder) or "segmentation" (an
            ``smp.Unet``: a U-Net entry's encoder, decoder and head, or a backbone entry as encoder of a fresh
            decoder; Models Genesis gives its whole UNet3D). See ``ssl_zoo.architectures.tasks``.
        classes: Output channels for ``task="segmentation"`` (default 1); a stored head with another count is
            replaced.
        framework: "timm" (timm/smp networks) or "monai" (``monai.networks.nets``: ResNet, DenseNet121,
            FlexibleUNet; see ``ssl_zoo.frameworks.monai``). Needs ``pip install "ssl_zoo[monai]"``.
        spatial_dims: 3 (with ``framework="monai"``) inflates the 2-D weights into the 3-D network, as I3D does
            (``ssl_zoo.architectures.inflate``).
        guard: Check the first batch against the entry's preprocessing and warn once if it looks raw
            (``ssl_zoo.guard``); ``SSL_ZOO_INPUT_GUARD=0`` turns it off everywhere.
        verify: Re-hash ``model.safetensors`` against ``config.json`` first (also ``SSL_ZOO_VERIFY=1``); the
            cheap checks (recorded size, header) run on every load.

    Returns:
        A timm ``nn.Module`` (or timm ``FeatureListNet`` with ``features_only``) in eval mode, or a MONAI network.

    Raises:
        UnknownModelError, DownloadError, ConversionError, ModelFolderError.
        UnknownTaskError: For a ``task`` other than the two above.
        OptionError: For an option that cannot apply to this model and task (``features_only``, ``exact`` or
            ``num_classes`` with a segmentation network; ``classes`` with a backbone), instead of ignoring it.
        FrameworkError: For a framework / spatial_dims ssl_zoo does not build for this model.
        MissingExtraError: For ``framework="monai"`` without MONAI installed.

    Example:
        >>> model = load("moco-v2")
        >>> model(torch.randn(2, 3, 224, 224)).shape
        torch.Size([2, 2048])
    """
    check_task(task)
    if framework != "monai" and reference_kind(name_or_path) is RefKind.NAME:  # before any download
        kind = get_arch(get_entry(str(name_or_path)).arch).kind
        check_options(kind, task, features_only=features_only, exact=exact, num_classes=num_classes, classes=classes,
                      in_chans=in_chans)
    folder = resolve_folder(name_or_path, progress=progress)
    config = read_config(folder)
    if verify:  # SSL_ZOO_VERIFY=1 is honoured by read_weights itself
        verify_folder(folder)
    check_framework(framework, spatial_dims, config)
    if framework == "monai":
        from .frameworks.monai import MonaiOptions, load_monai

        options = MonaiOptions(num_classes=num_classes, in_chans=in_chans or 3, task=task, classes=classes,
                               spatial_dims=spatial_dims, exact=exact, features_only=features_only)
        model = load_monai(folder, config, options)
    else:
        model = timm_model(folder, config, num_classes, in_chans, features_only, exact, task, classes)
    return attach_guard(model, folder, name_or_path) if guard_enabled(guard) else model


def timm_model(folder: Path, config: dict, num_classes: int, in_chans: int | None, features_only: bool,
               exact: bool | None, task: str, classes: int | None) -> nn.Module:
    """``load``'s timm/smp network of a model folder (arguments as ``load``'s)."""
    arch = folder_arch(config, folder)
    kind = get_arch(arch).kind
    check_options(kind, task, features_only=features_only, exact=exact, num_classes=num_classes, classes=classes,
                  in_chans=in_chans)
    weights = read_weights(folder)
    if kind is ArchKind.UNET3D:
        return unet3d_model(weights, task=task, classes=classes or 1, num_classes=num_classes)
    in_chans = in_chans or 3
    if in_chans != 3:
        weights = adapt_stem(weights, arch, in_chans)
    if task == "segmentation":
        return segmentation_model(arch, weights, classes=classes or 1, in_chans=in_chans)
    arch, weights = backbone_part(arch, weights)  # a U-Net's encoder is its backbone
    model = build_backbone(arch, in_chans=in_chans)
    model.load_state_dict(weights, strict=True, assign=True)
    model.pretrained_cfg = data_cfg_for(config["pretrained_cfg"], in_chans)
    if exact is not False:
        apply_same_padding(model, config.get("ssl_zoo", {}).get("parity", {}).get("same_padding_layers", ()))
    if num_classes:
        model.reset_classifier(num_classes)  # a fresh, randomly initialised head
    model.eval()
    return to_features_only(model, arch) if features_only else model


def data_cfg_for(pretrained_cfg: dict, in_chans: int) -> dict:
    """The folder's ``pretrained_cfg`` for ``in_chans`` inputs: mean/std averaged over RGB, as the stem is summed.

    timm's ``resolve_data_config`` takes the channel count from ``input_size`` and needs one mean/std per channel.
    """
    if in_chans == 3:
        return dict(pretrained_cfg)
    mean, std = (sum(pretrained_cfg[k]) / len(pretrained_cfg[k]) for k in ("mean", "std"))
    return {**pretrained_cfg, "input_size": [in_chans, *pretrained_cfg["input_size"][1:]],
            "mean": [mean] * in_chans, "std": [std] * in_chans}


def adapt_stem(weights: dict[str, torch.Tensor], arch: str, in_chans: int) -> dict[str, torch.Tensor]:
    """Adapt the RGB stem convolution to ``in_chans`` input channels with timm's rule."""
    from timm.models import adapt_input_conv

    key = get_arch(arch).first_conv + ".weight"
    return {**weights, key: adapt_input_conv(in_chans, weights[key])}
