"""Occlusion saliency on the feature vector and its attentive diffusion (SSL_medicalimaging ``saliency.py``).

Upstream's later ``saliency.py``, step by step: the image is ``Resize(242, bicubic)`` + ``CenterCrop(242)``,
scaled to [0,1] and normalised (``analysis_input``); a ``window`` x ``window`` square of ``value`` (0, in
normalised units) is put on a *fresh copy* of the image at every position with stride 1; each position scores
``||f(x) - f(x_occluded)|| / ||f(x)||`` (``f`` the pooled features) and adds the score to the pixels under the
window; the sum is divided by ``window ** 2`` and the border of ``window - 1`` pixels is cut away (242 -> 224 with
the preset; the same rule at any ``image_size``). Attentive diffusion = 100 x (pixels above the map's mean) /
pixels: low values mean the features hinge on a small region.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import SettingError
from .analysis_input import analysis_normalization, normalize_unit, unit_crop
from ..progress import bar
from .backbone import load_backbone
from .data import load_item
from .plots import draw_or_warn, pyplot, save_figure
from .results import write_json


@dataclass(frozen=True)
class SaliencySettings:
    """The settings of the occlusion saliency (preset table ``[saliency]``).

    Attributes:
        image_size: Resize (shorter side) and centre-crop size of the input; the map is ``image_size - 2 *
            (window - 1)`` pixels square.
        window: Side of the occluding square in pixels (slid with stride 1).
        value: What the square holds, in normalised units.
        interpolation: Resize interpolation.
        normalization: A rule of ``preprocess.NORMALIZATIONS`` ("paper": ImageNet mean/std, none for SimCLR,
            histogram equalisation for MIMIC-CheXpert; "entry": the model's own).
    """

    image_size: int = 242
    window: int = 10
    value: float = 0.0
    interpolation: str = "bicubic"
    normalization: str = "paper"


def occlusion_scores(model: Any, image: Any, *, window: int, value: float = 0.0, batch_size: int = 64,
                     progress: bool = True) -> np.ndarray:
    """``||f(x) - f(x_occ)|| / ||f(x)||`` for every stride-1 window position: shape ``(H - w + 1, W - w + 1)``.

    Each row of a batch is a fresh copy of ``image`` with one window occluded, as upstream's later script.
    """
    import torch

    _, height, width = image.shape
    starts = [(y, x) for y in range(height - window + 1) for x in range(width - window + 1)]
    scores = np.zeros(len(starts))
    with torch.inference_mode():
        clean = model(image[None]).flatten(1).double()
        for first in bar(range(0, len(starts), batch_size), progress=progress, desc="occlusions",
                         total=-(-len(starts) // batch_size)):
            chunk = starts[first:first + batch_size]
            batch = image.repeat(len(chunk), 1, 1, 1)
            for row, (y, x) in enumerate(chunk):
                batch[row, :, y:y + window, x:x + window] = value
            change = (model(batch).flatten(1).double() - clean).norm(dim=1) / clean.norm()
            scores[first:first + len(chunk)] = change.cpu().numpy()
    return scores.reshape(height - window + 1, width - window + 1)


def accumulate(scores: np.ndarray, window: int) -> np.ndarray:
    """The saliency map: each score added to the pixels its window covered, / window**2, border cropped.

    Args:
        scores: ``occlusion_scores`` output, ``(H - w + 1, W - w + 1)``.
        window: The window side ``w``.

    Returns:
        ``(H - 2 (w - 1), W - 2 (w - 1))``: the pixels every window position could reach fully.
    """
    rows, cols = scores.shape
    total = np.zeros((rows + window - 1, cols + window - 1))
    for dy in range(window):
        for dx in range(window):
            total[dy:dy + rows, dx:dx + cols] += scores
    total /= window ** 2
    return total[window - 1:rows, window - 1:cols]


def attentive_diffusion(saliency: np.ndarray) -> float:
    """100 x the share of pixels whose saliency is above the map's mean."""
    return float(100.0 * (saliency > saliency.mean()).sum() / saliency.size)


def check_size(image_size: int, window: int) -> None:
    """Refuse a window that leaves no map after the border crop."""
    if window < 1 or image_size - 2 * (window - 1) < 1:
        raise SettingError(f"window {window} leaves no saliency map on a {image_size}-pixel image (the map is "
                           f"image_size - 2 x (window - 1) pixels); use a larger --image-size or a smaller --window")


def save_overlay(pixels: Any, saliency: np.ndarray, path: Path, title: str) -> list[Path]:
    """The cropped input beside it with the map over it (``jet``, alpha 0.6 as upstream) and a colourbar.

    Returns:
        The PNG, PDF and SVG written.
    """
    plt = pyplot()
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 3.5), dpi=150)
    shown = pixels.permute(1, 2, 0).numpy()
    for ax, label in ((left, "input (crop)"), (right, "occlusion saliency")):
        ax.imshow(shown, cmap="gray")
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    scale = Normalize(float(saliency.min()), float(saliency.max()))
    right.imshow(saliency, cmap="jet", norm=scale, alpha=0.6)
    colourbar = fig.colorbar(ScalarMappable(scale, "jet"), ax=right, fraction=0.046, pad=0.04)
    colourbar.set_label(r"$\|f(x)-f(x_{occ})\| / \|f(x)\|$, window mean", fontsize=7)
    colourbar.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def image_name(item: Any, index: int) -> str:
    """A short name for an image: its file stem, or ``image-<i>`` for an array."""
    return f"image-{index}" if isinstance(item, np.ndarray) else Path(item).name.split(".")[0]


def saliency(model: str | Path, images: Sequence[Any], out_dir: str | Path, *, preset: str | None = None,
             image_size: int | None = None, window: int | None = None, normalization: str | None = None,
             in_chans: int = 3, device: str | None = None, batch_size: int = 64,
             progress: bool = True) -> dict[str, Any]:
    """Occlusion saliency maps of ``images`` with overlays, the maps as ``.npy`` and ``saliency.json``.

    Args:
        model: A registry name or a model folder.
        images: Image paths (PNG, JPEG, DICOM, NIfTI) or uint8 arrays.
        out_dir: Output folder.
        preset: The preset (default "ssl-transfer"); ``image_size``, ``window``, ``normalization`` override it.
        in_chans: Model input channels (1: the RGB crop is averaged to one channel).
        device: "cuda", "cpu", ... (default CUDA when present).
        batch_size: Occluded copies per forward pass (speed only).
        progress: Progress bars on stderr.

    Returns:
        ``{"model", "preset", "normalization", "images": [{"image", "attentive_diffusion", "map", "figures"}]}``.

    Raises:
        SettingError: A window too large for the image.

    Example:
        >>> saliency("moco-v2", ["chest.png"], "runs/saliency")["images"][0]["attentive_diffusion"]
    """
    from ..runtime import pick_device
    from .presets import resolve

    resolved = resolve("saliency", preset, image_size=image_size, window=window, normalization=normalization)
    s = resolved.settings
    check_size(s.image_size, s.window)
    # every image read before the first of its tens of thousands of forward passes: a bad one stops at once
    units = [unit_crop(load_item(item), s.image_size, s.image_size, s.interpolation) for item in images]
    target = pick_device(device)
    backbone = load_backbone(model, in_chans=in_chans, progress=progress)
    norm = analysis_normalization(backbone.folder, s.normalization, in_chans)
    net = backbone.model.eval().to(target)
    out_dir, entries = Path(out_dir), []
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (item, unit) in enumerate(zip(images, units)):
        x = normalize_unit(unit, norm)
        smap = accumulate(occlusion_scores(net, x.to(target), window=s.window, value=s.value,
                                           batch_size=batch_size, progress=progress), s.window)
        border = s.window - 1
        name, value = image_name(item, i), attentive_diffusion(smap)
        stem = out_dir / f"saliency-{i:03d}-{name}"
        np.save(stem.with_suffix(".npy"), smap)
        title = f"{Path(str(model)).name}: {name}, attentive diffusion {value:.1f} %"
        crop = unit[:, border:s.image_size - border, border:s.image_size - border]
        figures = draw_or_warn(lambda: save_overlay(crop, smap, stem.with_suffix(".png"), title), "saliency overlay")
        entries.append({"image": name, "attentive_diffusion": value, "map": str(stem.with_suffix(".npy")),
                        "figures": [str(f) for f in figures]})
    record = {"model": str(model), "preset": resolved.record(), "normalization": norm, "images": entries}
    write_json(out_dir / "saliency.json", record)
    return record
