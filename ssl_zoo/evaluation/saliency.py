"""Occlusion saliency on the feature vector and its attentive diffusion (SSL_medicalimaging ``saliency.py``).

A ``window`` x ``window`` patch of zeros (in normalised units) slides over the preprocessed image with ``stride``;
each position scores ``||f(x) - f(x_occluded)|| / ||f(x)||`` and adds it to the pixels it covers; the map is the
sum divided by how often each pixel was covered. Attentive diffusion = 100 x (pixels above the map's mean) /
pixels: low values mean the features hinge on a small region.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .backbone import load_backbone
from .data import load_item
from .plots import pyplot
from .preprocess import build_transform
from .results import write_json


def occlusion_map(model: Any, image: Any, *, window: int = 10, stride: int = 4, batch_size: int = 64) -> np.ndarray:
    """(H, W) occlusion sensitivity of ``model``'s features for one preprocessed (C, H, W) image tensor."""
    import torch

    _, height, width = image.shape
    starts = [(y, x) for y in range(0, height - window + 1, stride) for x in range(0, width - window + 1, stride)]
    total, covered = torch.zeros(height, width), torch.zeros(height, width)
    with torch.inference_mode():
        clean = model(image[None]).flatten(1)
        for i in range(0, len(starts), batch_size):
            chunk = starts[i:i + batch_size]
            batch = image.repeat(len(chunk), 1, 1, 1)
            for j, (y, x) in enumerate(chunk):
                batch[j, :, y:y + window, x:x + window] = 0
            change = (model(batch).flatten(1) - clean).norm(dim=1) / clean.norm()
            for (y, x), value in zip(chunk, change.tolist()):
                total[y:y + window, x:x + window] += value
                covered[y:y + window, x:x + window] += 1
    return (total / covered.clamp(min=1)).numpy()


def attentive_diffusion(saliency: np.ndarray) -> float:
    """100 x the share of pixels whose saliency is above the map's mean."""
    return float(100.0 * (saliency > saliency.mean()).sum() / saliency.size)


def save_overlay(pixels: np.ndarray, saliency: np.ndarray, path: Path, title: str) -> Path:
    """The image in gray with the saliency map over it in a colour map (PNG)."""
    plt = pyplot()
    gray = pixels if pixels.ndim == 2 else pixels.mean(-1)
    fig, ax = plt.subplots(figsize=(4, 4), dpi=150)
    ax.imshow(gray, cmap="gray", extent=(0, 1, 1, 0))
    ax.imshow(saliency, cmap="jet", alpha=0.45, extent=(0, 1, 1, 0))
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def saliency(model: str | Path, images: list[Any], out_dir: str | Path, *, window: int = 10, stride: int = 4,
             image_size: int | None = None, in_chans: int = 3, progress: bool = True) -> dict[str, Any]:
    """Occlusion maps of ``images`` (paths or uint8 arrays) as PNG overlays plus ``saliency.json``.

    Returns:
        ``{"model", "window", "stride", "images": [{"image", "png", "attentive_diffusion"}, ...]}``.
    """
    backbone = load_backbone(model, in_chans=in_chans, progress=progress)
    transform = build_transform(backbone.folder, backbone.model.pretrained_cfg, image_size=image_size,
                                in_chans=in_chans)
    out_dir, entries = Path(out_dir), []
    for i, item in enumerate(images):
        pixels = load_item(item)
        smap = occlusion_map(backbone.model.eval(), transform(pixels), window=window, stride=stride)
        value = attentive_diffusion(smap)
        name = Path(item).stem if not isinstance(item, np.ndarray) else f"image-{i}"
        png = save_overlay(pixels, smap, out_dir / f"saliency-{i:03d}-{name}.png", f"{name}: diffusion {value:.1f}%")
        entries.append({"image": str(name), "png": str(png), "attentive_diffusion": value})
    record = {"model": str(model), "window": window, "stride": stride, "images": entries}
    write_json(out_dir / "saliency.json", record)
    return record
