"""Tell what container a file is from its bytes, never from its name.

``.pth.tar`` is a naming habit from torch 0.x, not a tar archive, and a ``.zip`` may be a torch file or a
TensorFlow checkpoint, so every decision here reads the file itself.
"""

from __future__ import annotations

import pickletools
import tarfile
import zipfile
from pathlib import Path
from typing import Final

from ...store.webpages import looks_like_html

__all__ = ["KINDS", "TORCH_MAGIC_NUMBER", "head_bytes", "is_torchscript_zip", "sniff", "zip_is_intact"]

KINDS: Final = ("torch-zip", "torch-legacy", "torch-tar", "zip", "html", "pickle", "empty", "unknown")

# The first pickle of every legacy (pre-zip) torch file is this number; it equals
# ``torch.serialization.MAGIC_NUMBER`` (a test checks that), kept here so sniffing needs no torch import.
TORCH_MAGIC_NUMBER: Final = 0x1950A86A20F9469CFC6C

_HEAD_SIZE: Final = 512  # enough for the magic pickle and for an HTML preamble after some whitespace
_ZIP_MAGICS: Final = (b"PK\x03\x04", b"PK\x05\x06")
_PICKLE_PROTOCOLS: Final = range(2, 6)


def sniff(path: Path | str) -> str:
    """Name the container of ``path`` by reading its content.

    Args:
        path: The file to inspect.

    Returns:
        One of :data:`KINDS`: ``"torch-zip"`` (a zip holding ``<stem>/data.pkl``), ``"torch-legacy"`` (the
        magic-number pickle stream), ``"torch-tar"`` (any tar archive: torch < 0.1.10), ``"zip"`` (any other zip,
        including one whose central directory is missing), ``"html"``, ``"pickle"`` (a plain pickle),
        ``"empty"`` or ``"unknown"``.

    Raises:
        OSError: If the file cannot be opened.

    Example:
        >>> sniff(Path("moco_v2_800ep_pretrain.pth.tar"))  # doctest: +SKIP
        'torch-legacy'
    """
    path = Path(path)
    head = head_bytes(path)
    if not head:
        return "empty"
    if head.startswith(_ZIP_MAGICS):
        return "torch-zip" if _has_torch_pickle(path) else "zip"
    if _starts_with_torch_magic(head):
        return "torch-legacy"
    if len(head) > 1 and head[0] == 0x80 and head[1] in _PICKLE_PROTOCOLS:
        return "pickle"
    if looks_like_html(head):
        return "html"
    return "torch-tar" if _is_tar(path) else "unknown"


def head_bytes(path: Path | str, size: int = _HEAD_SIZE) -> bytes:
    """Return the first ``size`` bytes of ``path`` (fewer if the file is shorter).

    Args:
        path: The file to read.
        size: How many bytes at most.

    Returns:
        The bytes read.

    Raises:
        OSError: If the file cannot be read.

    Example:
        >>> head_bytes(Path("model.pth"), 4)  # doctest: +SKIP
        b'PK\\x03\\x04'
    """
    with open(path, "rb") as fh:
        return fh.read(size)


def zip_is_intact(path: Path | str) -> bool:
    """Whether ``path`` opens as a zip, i.e. its central directory is present and readable.

    Args:
        path: A file that starts like a zip.

    Returns:
        False for a download cut short (the directory lives at the end of a zip).

    Example:
        >>> zip_is_intact(Path("half_a_download.pth"))  # doctest: +SKIP
        False
    """
    return _zip_names(path) is not None


def is_torchscript_zip(path: Path | str) -> bool:
    """Whether a torch zip is a TorchScript archive (``torch.jit.save``) rather than a ``torch.save`` file.

    Args:
        path: A file that :func:`sniff` called ``"torch-zip"``.

    Returns:
        True if it holds the ``constants.pkl`` and ``code/`` records that only TorchScript writes.

    Example:
        >>> is_torchscript_zip(Path("scripted.pt"))  # doctest: +SKIP
        True
    """
    names = _zip_names(path) or []
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _zip_names(path: Path | str) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, EOFError, ValueError):
        return None


def _has_torch_pickle(path: Path) -> bool:
    # torch.save writes every record under one folder named after the file stem
    return any(n.count("/") == 1 and n.endswith("/data.pkl") for n in _zip_names(path) or [])


def _starts_with_torch_magic(head: bytes) -> bool:
    # Parse only the first pickle's opcodes (nothing is executed), so any pickle protocol is recognised.
    try:
        return any(op.name == "LONG1" and arg == TORCH_MAGIC_NUMBER for op, arg, _ in pickletools.genops(head))
    except Exception:  # arbitrary bytes can trip any opcode decoder; none of them has side effects
        return False


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, EOFError):
        return False
