"""Deep-image-prior reconstruction of an image from a model's features, and its LPIPS distance to the original.

SSL_medicalimaging ``reconstruction.py`` (after Zhao et al.'s Good_transfer), step by step: the image is
``Resize(224, bicubic)`` + ``CenterCrop(224)`` + ``ToTensor`` (no mean/std: upstream feeds [0,1] as is); the target
is the model's ``layer4`` feature map of it; an encoder-decoder with skips (``skip_network``: 6 scales,
channels 16-32-64-128-128-128, skips of 4, filters 7-7-5-5-3-3, average-pool down, nearest up, LeakyReLU(0.2),
no sigmoid) maps fixed noise (32 x 256 x 256, uniform [0, 0.1)) to an image whose top-left 224 x 224 crop is
fed to the model; Adam (lr 1e-3) on the network's weights minimises the MSE of the feature maps for
``max_iter + 1`` steps (upstream's ``while n_iter <= max_iter``). The output is clipped to [0,1] and stored
as 8 bits (``ToPILImage`` truncates), then LPIPS (``perceptual``) compares it with the original, both in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SettingError
from .analysis_input import analysis_normalization, unit_crop
from ..progress import bar
from .backbone import load_backbone
from .data import load_item
from .plots import draw_or_warn, pyplot, save_figure
from .results import write_json

LAYER_MODULES = {"layer4": ("layer4", "features.denseblock4")}  # upstream's name -> ResNet / DenseNet module


@dataclass(frozen=True)
class ReconstructionSettings:
    """The settings of the deep-image-prior reconstruction (preset table ``[reconstruction]``).

    Attributes:
        image_size: Resize + centre crop of the image; the network's output is cropped to it.
        layer: The model's feature map to match ("layer4" or a module name).
        lr: Adam learning rate.
        max_iter: Adam steps minus one (upstream's loop runs ``max_iter + 1``; its Slurm script uses 3000).
        input_depth: Channels of the noise input.
        noise_size: Side of the noise input (a multiple of 64, >= 128: six halvings).
        noise_scale: The noise is uniform [0, noise_scale).
        clip: Clip the reconstruction to [0,1] before it is stored.
        normalise_input: Normalise the model's input (upstream does not).
        perceptual: LPIPS trunks to score with ("alex", "vgg", "squeeze").
        seed: ``torch.manual_seed`` of the network's initialisation and the noise.
    """

    image_size: int = 224
    layer: str = "layer4"
    lr: float = 1e-3
    max_iter: int = 3000
    input_depth: int = 32
    noise_size: int = 256
    noise_scale: float = 0.1
    clip: bool = True
    normalise_input: bool = False
    perceptual: tuple[str, ...] = ("alex", "vgg", "squeeze")
    seed: int = 0


def conv(in_ch: int, out_ch: int, kernel: int, *, down: bool = False) -> Any:
    """Zero-padded convolution (with bias), followed by 2 x 2 average pooling when ``down``."""
    from torch import nn

    layers = [nn.Conv2d(in_ch, out_ch, kernel, padding=(kernel - 1) // 2)]
    return nn.Sequential(*layers, nn.AvgPool2d(2, 2)) if down else nn.Sequential(*layers)


def block(*layers: Any, channels: int) -> list[Any]:
    """``layers`` then BatchNorm and LeakyReLU(0.2)."""
    from torch import nn

    return [*layers, nn.BatchNorm2d(channels), nn.LeakyReLU(0.2, inplace=True)]


def concat(skip: Any, deeper: Any) -> Any:
    """A module running both branches on its input and joining their channels (centre-cropped to the smaller)."""
    import torch
    from torch import nn

    class Concat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.skip, self.deeper = skip, deeper

        def forward(self, x: Any) -> Any:
            outs = [self.skip(x), self.deeper(x)]
            h, w = min(o.shape[2] for o in outs), min(o.shape[3] for o in outs)
            return torch.cat([o[:, :, (o.shape[2] - h) // 2:(o.shape[2] - h) // 2 + h,
                                (o.shape[3] - w) // 2:(o.shape[3] - w) // 2 + w] for o in outs], 1)

    return Concat()


def skip_network(input_depth: int = 32, down: tuple[int, ...] = (16, 32, 64, 128, 128, 128),
                 up: tuple[int, ...] = (16, 32, 64, 128, 128, 128), skip: tuple[int, ...] = (4,) * 6,
                 kernels: tuple[int, ...] = (7, 7, 5, 5, 3, 3)) -> Any:
    """The deep-image-prior ``skip`` encoder-decoder with upstream's reconstruction configuration."""
    from torch import nn

    def level(i: int, in_ch: int) -> list[Any]:
        deeper = block(conv(in_ch, down[i], kernels[i], down=True), channels=down[i])
        deeper += block(conv(down[i], down[i], kernels[i]), channels=down[i])
        deeper += level(i + 1, down[i]) if i + 1 < len(down) else []
        deeper.append(nn.Upsample(scale_factor=2, mode="nearest"))
        branch = concat(nn.Sequential(*block(conv(in_ch, skip[i], 1), channels=skip[i])), nn.Sequential(*deeper))
        width = skip[i] + (up[i + 1] if i + 1 < len(down) else down[i])
        return [branch, nn.BatchNorm2d(width), *block(conv(width, up[i], kernels[i]), channels=up[i]),
                *block(conv(up[i], up[i], 1), channels=up[i])]

    return nn.Sequential(*level(0, input_depth), conv(up[0], 3, 1))


class _LayerReached(Exception):
    """Raised by the hook to stop the forward pass once the wanted feature map exists."""

    def __init__(self, value: Any) -> None:
        super().__init__("layer reached")
        self.value = value


def feature_map(net: Any, layer: str) -> Any:
    """A function: images -> ``net``'s output at ``layer`` (the rest of the network is not run)."""
    modules = dict(net.named_modules())
    name = next((m for m in LAYER_MODULES.get(layer, (layer,)) if m in modules), None)
    if name is None:
        raise SettingError(f"the model has no layer {layer!r}; give a module name such as layer3")

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        raise _LayerReached(output)

    def run(x: Any) -> Any:
        handle = modules[name].register_forward_hook(hook)
        try:
            net(x)
        except _LayerReached as reached:
            return reached.value
        finally:
            handle.remove()
        raise SettingError(f"layer {layer!r} was not reached by the forward pass")

    return run


def optimise(features: Any, target: Any, s: ReconstructionSettings, device: Any, progress: bool) -> tuple[Any, list]:
    """Fit the skip network to ``target`` features; the final image (1, 3, size, size) and the loss curve."""
    import torch

    if s.noise_size % 64 or s.noise_size < max(128, s.image_size):
        raise SettingError(f"noise_size must be a multiple of 64, at least 128 (BatchNorm at the deepest of six "
                           f"halvings needs 2 x 2) and at least image_size; got {s.noise_size}")
    torch.manual_seed(s.seed)
    net = skip_network(s.input_depth).to(device)
    noise = (torch.rand(1, s.input_depth, s.noise_size, s.noise_size) * s.noise_scale).to(device)
    optimiser, losses = torch.optim.Adam(net.parameters(), lr=s.lr), []
    for _ in bar(range(s.max_iter + 1), progress=progress, desc="reconstruction"):
        optimiser.zero_grad()
        loss = torch.nn.functional.mse_loss(features(net(noise)[:, :, :s.image_size, :s.image_size]), target)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        return net(noise)[:, :, :s.image_size, :s.image_size].detach().cpu(), losses


def to_8bit(image: Any, clip: bool) -> np.ndarray:
    """(1, 3, H, W) float -> (H, W, 3) uint8 as ``ToPILImage`` makes it (clipped, ``x * 255`` truncated)."""
    import torch

    x = image[0].clamp(0, 1) if clip else image[0]
    return (x * 255).to(torch.uint8).permute(1, 2, 0).numpy()


def save_pair(original: np.ndarray, recon: np.ndarray, path: Path, title: str) -> list[Path]:
    """Original and reconstruction side by side (PNG, PDF, SVG)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6), dpi=150)
    for ax, image, label in zip(axes, (original, recon), ("original (crop)", "reconstruction from features")):
        ax.imshow(image)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def perceptual_distances(metrics: dict[str, Any], unit: Any, pixels: np.ndarray, device: Any) -> dict[str, float]:
    """LPIPS of the [0,1] original crop and the stored 8-bit reconstruction, both in [-1, 1] as upstream reads them."""
    import torch

    stored = torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255
    return {n: float(m.distance((unit * 2 - 1).to(device), (stored * 2 - 1).to(device))[0])
            for n, m in metrics.items()}


def save_outputs(out_dir: Path, stem: str, unit: Any, pixels: np.ndarray, title: str) -> dict[str, Any]:
    """The reconstruction as PNG and the side-by-side figure; ``{"reconstruction", "figures"}``."""
    from PIL import Image

    path = out_dir / f"reconstruction-{stem}.png"
    Image.fromarray(pixels).save(path)
    original = np.round(unit[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    figures = draw_or_warn(lambda: save_pair(original, pixels, out_dir / f"side-by-side-{stem}.png", title),
                           "side-by-side figure")
    return {"reconstruction": str(path), "figures": [str(f) for f in figures]}


def model_input(folder: Path, s: ReconstructionSettings) -> Any:
    """What the model sees of a [0,1] batch: as it is (upstream), or mean/std-normalised (``normalise_input``)."""
    import torch

    if not s.normalise_input:
        return lambda x: x
    norm = analysis_normalization(folder, "paper")
    if norm["histogram"]:
        raise SettingError("normalise_input cannot use histogram equalisation (not differentiable); "
                           "leave normalise_input off for this model")
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (norm["mean"], norm["std"]))
    return lambda x: (x - mean.to(x.device)) / std.to(x.device)


def reconstruct(model: str | Path, images: list[Any], out_dir: str | Path, *, preset: str | None = None,
                device: str | None = None, progress: bool = True, **overrides: Any) -> dict[str, Any]:
    """Reconstruct each image from ``model``'s features; LPIPS distances, PNGs and ``reconstruction.json``.

    Args:
        model: A registry name or a model folder.
        images: Image paths or uint8 arrays.
        out_dir: Output folder.
        preset: The preset (default "ssl-transfer"); ``overrides`` change single ``ReconstructionSettings`` fields
            (e.g. ``max_iter=300``, ``perceptual=("alex",)``).
        device: "cuda", "cpu", ... (3000 steps take minutes on a GPU, hours on a CPU).
        progress: Progress bars on stderr.

    Returns:
        ``{"model", "preset", "images": [{"image", "lpips": {net: distance}, "final_loss", "reconstruction",
        "figures"}]}``.

    Raises:
        SettingError: A bad layer or noise size.
        OfflineError / ChecksumError: The LPIPS weights cannot be pulled or do not verify.

    Example:
        >>> reconstruct("moco-v2", ["chest.png"], "runs/recon", perceptual=("alex",))["images"][0]["lpips"]
    """
    from ..runtime import pick_device
    from .perceptual import load_lpips
    from .presets import resolve
    from .saliency import image_name

    resolved = resolve("reconstruction", preset, **overrides)
    s, target_device = resolved.settings, pick_device(device)
    # every image read before anything is pulled or optimised: a bad third image must not cost two runs
    units = [unit_crop(load_item(item), s.image_size, s.image_size, "bicubic")[None] for item in images]
    metrics = {net: load_lpips(net, progress=progress).to(target_device) for net in s.perceptual}  # pull first
    backbone = load_backbone(model, progress=progress, guard=s.normalise_input)  # [0,1] input is the paper's
    net = backbone.model.eval().to(target_device).requires_grad_(False)
    features, prepare = feature_map(net, s.layer), model_input(backbone.folder, s)
    out_dir, entries = Path(out_dir), []
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (item, unit) in enumerate(zip(images, units)):
        target = features(prepare(unit.to(target_device))).detach()
        recon, losses = optimise(lambda x: features(prepare(x)), target, s, target_device, progress)
        pixels = to_8bit(recon, s.clip)
        distances = perceptual_distances(metrics, unit, pixels, target_device)
        title = (f"{Path(str(model)).name}, {s.layer}, {s.max_iter + 1} steps; LPIPS (lower = closer): "
                 + ", ".join(f"{k} {v:.3f}" for k, v in distances.items()))
        files = save_outputs(out_dir, f"{i:03d}-{image_name(item, i)}", unit, pixels, title)
        entries.append({"image": image_name(item, i), "lpips": distances, "final_loss": losses[-1], **files})
    record = {"model": str(model), "preset": resolved.record(), "images": entries}
    write_json(out_dir / "reconstruction.json", record)
    return record
