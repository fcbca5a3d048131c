"""Readers: one module per container format, each turning a file into plain containers of tensors.

A reader knows nothing about methods or key names (the family rules do). It recognises its container by
content, loads it without running code from it, and explains in one line what to do when the bytes are not
a checkpoint. Adding a format is one line in :data:`READERS`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from ...errors import NotACheckpointError
from .sniff import sniff

__all__ = ["READERS", "read_checkpoint", "sniff"]

# format name (the registry's ``format`` field) → "module:function" in this package, imported on first use so
# that a reader's optional dependencies load only when its format is read
READERS: Final[dict[str, str]] = {
    "torch": "torch_file:read_torch_file",
    "tf1-checkpoint": "tf_checkpoint:read_tf_checkpoint",
    "haiku-pickle": "haiku_pickle:read_haiku_pickle",
}


def read_checkpoint(path: Path | str, format: str = "torch") -> Any:
    """Read an upstream checkpoint safely and return its top-level object.

    Args:
        path: The downloaded file.
        format: Which reader, as the registry entry names it (``"torch"`` for every ``torch.save`` file).

    Returns:
        Dicts/lists of tensors (on CPU) and plain values, as the upstream file holds them.

    Raises:
        NotACheckpointError: If ``format`` is unknown or the file is not a readable checkpoint of it.
        UnsafePickleError: If the file names code that ssl_zoo will not run.
        OSError: If the file cannot be read.

    Example:
        >>> ckpt = read_checkpoint(Path("moco_v2_800ep_pretrain.pth.tar"))  # doctest: +SKIP
        >>> sorted(ckpt)  # doctest: +SKIP
        ['arch', 'epoch', 'optimizer', 'state_dict']
    """
    return _reader(format, path)(Path(path))


def _reader(format: str, path: Path | str) -> Callable[[Path], Any]:
    target = READERS.get(format)
    if target is None:
        raise NotACheckpointError(f"cannot read {path}: unknown checkpoint format {format!r}; "
                                  f"known formats: {', '.join(sorted(READERS))}")
    module, function = target.split(":")
    return getattr(importlib.import_module(f".{module}", __name__), function)
