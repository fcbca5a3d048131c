"""One reader per dataset layout; a card names its reader here."""

from __future__ import annotations

import importlib
from typing import Callable

READERS: dict[str, str] = {
    "chexpert-csv": "chest:read_chexpert",
    "chestx-ray14": "chest:read_chestxray14",
    "mimic-cxr-csv": "chest:read_mimic",
    "class-folders": "files:read_class_folders",
    "file-prefix": "files:read_file_prefix",
    "file-suffix": "files:read_file_suffix",
    "eyepacs-csv": "tables:read_eyepacs",
    "stoic-mha": "tables:read_stoic",
    "medmnist-npz": "medmnist:read_medmnist",
    "lung-masks": "masks:read_montgomery_lungs",
    "drive": "masks:read_drive",
    "image-mask": "masks:read_image_mask",
}


def reader(name: str) -> Callable:
    """The reader function called ``name`` (imported on first use)."""
    module, function = READERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)
