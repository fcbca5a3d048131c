"""Which framework's network ``ssl_zoo.load`` builds: timm/smp (the default) or MONAI (``frameworks/monai.py``)."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from ..errors import FrameworkError
from ..extras import extra_imports

FRAMEWORKS = ("timm", "monai")


def require_monai() -> ModuleType:
    """The ``monai`` package.

    Raises:
        MissingExtraError: When MONAI is not installed; the message gives ``pip install "ssl_zoo[monai]"``.
    """
    with extra_imports():
        return importlib.import_module("monai")


def check_framework(framework: str, spatial_dims: int = 2, config: dict[str, Any] | None = None) -> None:
    """Refuse a framework / dimensionality pair ssl_zoo does not build, before anything is built.

    Args:
        framework: "timm" or "monai".
        spatial_dims: 2, or 3 for weights inflated into a 3-D network (MONAI only).
        config: The model folder's ``config.json``; a folder saved from a MONAI network loads only in MONAI.

    Raises:
        FrameworkError: With the argument to pass instead.
    """
    if framework not in FRAMEWORKS:
        raise FrameworkError(f"unknown framework {framework!r}: pass framework='timm' or framework='monai'")
    if spatial_dims not in (2, 3):
        raise FrameworkError(f"spatial_dims={spatial_dims!r}: pass 2, or 3 to inflate the weights into a 3-D network")
    if framework == "timm" and spatial_dims == 3:
        raise FrameworkError("spatial_dims=3 builds a MONAI 3-D network: pass framework='monai'")
    if framework == "timm" and (config or {}).get("ssl_zoo", {}).get("framework") == "monai":
        raise FrameworkError("this folder holds a MONAI network saved by ssl_zoo: pass framework='monai'")
