"""The ``config.json`` of every model folder: timm's fields, plus an ``ssl_zoo`` block with the preprocessing record.

Converted, pre-trained and published folders all get theirs from ``folder_config``, so each one can be loaded by
timm (``local-dir:`` / ``hf-hub:``) and by ``ssl_zoo.load``, and ``ssl_zoo.transforms(folder)`` (hence every
evaluation protocol) knows its input pipeline without being told an image size.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..architectures import ArchSpec
from ..registry import Preprocessing


def preprocessing_record(pre: Preprocessing) -> dict[str, Any]:
    """The JSON form of ``pre`` that model folders keep as ``config.json["ssl_zoo"]["preprocessing_record"]``."""
    return dataclasses.asdict(pre)


def pretrained_cfg(spec: ArchSpec, pre: Preprocessing, *, pool_size: tuple[int, ...] | None = None,
                   **about: str) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` (only keys timm's ``PretrainedCfg`` accepts) for inputs prepared as ``pre``.

    Args:
        spec: The architecture.
        pre: The input pipeline.
        pool_size: The last feature map's size; default the architecture's at 224.
        **about: timm's descriptive keys: ``description`` and, for published work, ``license``, ``origin_url``,
            ``paper_name``, ``paper_ids``.
    """
    channels = pre.input_size[0]
    return {
        "input_size": list(pre.input_size),
        "interpolation": pre.interpolation,
        "crop_pct": pre.crop_pct,
        "crop_mode": "center",
        "mean": list(pre.mean) if pre.mean else [0.0] * channels,
        "std": list(pre.std) if pre.std else [1.0] * channels,
        "num_classes": 0,
        "pool_size": list(pool_size or spec.pool_size),
        "first_conv": spec.first_conv,
        "classifier": spec.classifier,
        **about,
    }


def folder_config(spec: ArchSpec, pre: Preprocessing, zoo: dict[str, Any], *, architecture: str | None = None,
                  pool_size: tuple[int, ...] | None = None, **about: str) -> dict[str, Any]:
    """The whole ``config.json`` of a model folder.

    Args:
        spec: The architecture built from the folder.
        pre: The input pipeline the weights expect; stored as ``ssl_zoo.preprocessing_record``.
        zoo: The rest of the ``ssl_zoo`` block (name, method, version, weights_sha256, provenance or training).
        architecture: What ``config.json`` names as architecture; default ``spec.timm_name``.
        pool_size: As for ``pretrained_cfg``.
        **about: As for ``pretrained_cfg``.

    Returns:
        A JSON-ready dict.

    Example:
        >>> folder_config(get_arch("resnet50"), Preprocessing(), {"name": "mine"})["ssl_zoo"]["preprocessing"]
        '3x224x224 RGB, [0,1], no normalisation'
    """
    return {
        "architecture": architecture or spec.timm_name,
        "num_classes": 0,
        "num_features": spec.num_features,
        "global_pool": "avg",
        "pretrained_cfg": pretrained_cfg(spec, pre, pool_size=pool_size, **about),
        "ssl_zoo": {**zoo, "preprocessing": pre.describe(), "preprocessing_record": preprocessing_record(pre),
                    "parts": list(zoo.get("parts", spec.parts))},
    }
