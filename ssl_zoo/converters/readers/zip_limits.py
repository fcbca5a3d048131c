"""Sizes a zip's central directory may declare: checked before any member is allocated or inflated."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Final

from ...errors import ResourceLimitError

__all__ = ["MAX_RATIO", "check_zip_sizes"]

MAX_RATIO: Final = 100  # torch stores records uncompressed; deflated weights or a pickle shrink far less than this


def check_zip_sizes(zf: zipfile.ZipFile, path: Path) -> int:
    """Refuse a zip whose members declare more than its size allows; return the bytes they declare.

    Args:
        zf: The open archive.
        path: Its file, for the size and the message.

    Returns:
        The sum of the members' uncompressed sizes.

    Raises:
        ResourceLimitError: If a member inflates more than :data:`MAX_RATIO` times, or all together more than
            :data:`MAX_RATIO` times the file.
    """
    size = max(path.stat().st_size, 1)
    for info in zf.infolist():
        if info.compress_size > size:
            raise ResourceLimitError(f"{path}: {info.filename} declares {info.compress_size:,} compressed bytes in "
                                     f"a {size:,}-byte file (limit: declared size); the zip is damaged or hostile")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ResourceLimitError(f"{path}: {info.filename} declares {info.file_size:,} bytes from "
                                     f"{info.compress_size:,} compressed (limit: decompression ratio {MAX_RATIO})"
                                     "; the zip is damaged or hostile")
    total = sum(info.file_size for info in zf.infolist())
    if total > MAX_RATIO * size:
        raise ResourceLimitError(f"{path}: members declare {total:,} bytes in a {size:,}-byte file (limit: "
                                 f"decompression ratio {MAX_RATIO}); the zip is damaged or hostile")
    return total
