"""The model under evaluation: a registry name or model folder, loaded once, with an identity for caches."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Backbone:
    """A loaded model and where it came from.

    Attributes:
        ref: What the user named (registry name or folder path); the label in tables.
        folder: The model folder.
        model: The timm module (eval mode).
        fingerprint: sha256 over the folder's config and weight file size/mtime: the feature-cache key.
    """

    ref: str
    folder: Path
    model: Any
    fingerprint: str


def load_backbone(ref: str | Path, *, in_chans: int = 3, num_classes: int = 0, progress: bool = True,
                  guard: bool = True) -> Backbone:
    """``ssl_zoo.load(ref, num_classes=..., in_chans=..., guard=...)`` plus its folder and fingerprint.

    ``guard=False`` for a protocol that feeds un-normalised input on purpose (the paper's reconstruction does).
    """
    from ..loading import load
    from ..resolve import resolve_folder

    folder = resolve_folder(ref, progress=progress)
    model = load(folder, num_classes=num_classes, in_chans=in_chans, progress=progress, guard=guard)
    return Backbone(str(ref), folder, model, folder_fingerprint(folder, in_chans))


def folder_fingerprint(folder: Path, in_chans: int) -> str:
    digest = hashlib.sha256(f"{folder.resolve()}|in_chans={in_chans}".encode())
    for name in ("config.json", "model.safetensors"):
        stat = (folder / name).stat()
        digest.update(f"|{name}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()
