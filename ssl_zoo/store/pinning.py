"""Recorded first-seen digests as catalogue pins: the TOML a maintainer reviews and pastes into the registry."""

from __future__ import annotations

import json
from typing import Any

from . import cache
from .hashes import recorded_digests
from ..errors import UnknownModelError
from ..registry import Source, get_entry

__all__ = ["export_pins", "recorded_rows"]


def recorded_rows() -> list[dict[str, Any]]:
    """One row per recorded digest: entry, file, sha256, and whether the registry already pins it.

    Example:
        >>> [row["name"] for row in recorded_rows()]  # doctest: +SKIP
        ['moco-v2']
    """
    rows = []
    for key, digest in sorted(recorded_digests().items()):
        name, _, filename = key.partition("/")
        source = _source(name, filename)
        pin = "unknown entry" if source is None else ("sha256" if source.sha256 else
                                                     "prefix" if source.sha256_prefix else "none")
        rows.append({"name": name, "file": filename, "sha256": digest, "registry_pin": pin})
    return rows


def _source(name: str, filename: str) -> Source | None:
    try:
        entry = get_entry(name)
    except UnknownModelError:
        return None
    return next((s for s in entry.sources if s.filename == filename), None)


def export_pins() -> str:
    """The recorded digests as ``[[<entry>.sources]]`` tables in the catalogue's own form, full pins added.

    Each table repeats the source as the catalogue has it (url, filename, mirrors) with ``sha256`` (and ``size``
    when the file is cached), so a reviewed table replaces the entry's source block in
    ``ssl_zoo/registry/catalog/*.toml`` as it is.

    Returns:
        TOML text (a comment header, then one table per recorded file of a known entry).
    """
    lines = [f"# first-seen sha256s recorded in {cache.hash_lock_path()}",
             "# review each (was it downloaded from the URL shown, on a trusted network?), then replace the",
             "# matching [[<entry>.sources]] block in ssl_zoo/registry/catalog/*.toml with it"]
    for row in recorded_rows():
        source = _source(row["name"], row["file"])
        if source is None:
            lines += ["", f"# {row['name']}/{row['file']}: not in this registry, skipped"]
            continue
        lines += ["", *_source_table(row["name"], source, row["sha256"])]
    return "\n".join(lines) + "\n"


def _source_table(name: str, source: Source, digest: str) -> list[str]:
    cached = cache.download_path(name, source.filename)
    size = source.size or (cached.stat().st_size if cached.is_file() else None)
    fields: dict[str, Any] = {"url": source.url, "filename": source.filename, "sha256": digest, "size": size,
                              "mirrors": list(source.mirrors) or None}
    # json.dumps writes strings, ints and lists of strings exactly as TOML spells them
    return [f"[[{name}.sources]]"] + [f"{key} = {json.dumps(value)}" for key, value in fields.items() if value]
