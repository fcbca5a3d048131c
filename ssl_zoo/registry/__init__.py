"""What exists: the catalog of checkpoints (``catalog/*.toml``) and the functions that query it.

Adding a checkpoint of a supported method is one TOML table; see ARCHITECTURE.md, "Adding a checkpoint".
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import sys
from pathlib import Path
from typing import Any

from ..errors import RegistryError, UnknownModelError
from .schema import Entry, Preprocessing, Source, parse_entry, parse_preprocessing

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Entry", "Preprocessing", "Source", "all_entries", "get_entry", "list_models", "metric_entries",
           "get_metric_entry"]

CATALOG_DIR = Path(__file__).parent / "catalog"
METRICS_DIR = Path(__file__).parent / "metrics"  # networks of metrics (LPIPS): pulled like entries, never listed
PRESETS_FILE = "_presets.toml"


def _read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


@functools.cache
def _presets() -> dict[str, Preprocessing]:
    tables = _read_toml(CATALOG_DIR / PRESETS_FILE)
    return {name: parse_preprocessing(f"preset {name}", t) for name, t in tables.items()}


@functools.cache
def all_entries() -> dict[str, Entry]:
    """Every registry entry by name, parsed and validated once per process.

    Raises:
        RegistryError: If a catalog file breaks the schema or defines a name twice.
    """
    entries: dict[str, Entry] = {}
    for path in sorted(CATALOG_DIR.glob("*.toml")):
        if path.name == PRESETS_FILE:
            continue
        for name, table in _read_toml(path).items():
            if name in entries:
                raise RegistryError(f"{path.name}: [{name}] is defined twice")
            entries[name] = parse_entry(name, table, _presets())
    return entries


@functools.cache
def metric_entries() -> dict[str, Entry]:
    """The networks of metrics (``metrics/*.toml``, e.g. "lpips-alex"), parsed like entries; not in ``list``.

    Raises:
        RegistryError: If a file breaks the schema.
    """
    return {name: parse_entry(name, table, _presets())
            for path in sorted(METRICS_DIR.glob("*.toml")) for name, table in _read_toml(path).items()}


def get_metric_entry(name: str) -> Entry:
    """The metric network called ``name``.

    Raises:
        UnknownModelError: No such network; the message lists them.

    Example:
        >>> get_metric_entry("lpips-alex").arch
        'alexnet'
    """
    entries = metric_entries()
    if name not in entries:
        raise UnknownModelError(f"unknown metric network {name!r}; known: {', '.join(sorted(entries))}")
    return entries[name]


def get_entry(name: str) -> Entry:
    """The registry entry called ``name``.

    Args:
        name: A registry name such as ``"moco-v2"`` (case-insensitive).

    Returns:
        The frozen ``Entry``.

    Raises:
        UnknownModelError: If no entry has that name; the message suggests close names.

    Example:
        >>> get_entry("moco-v2").arch
        'resnet50'
    """
    entries = all_entries()
    key = name.strip().lower()
    if key in entries:
        return entries[key]
    close = difflib.get_close_matches(key, entries, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise UnknownModelError(f"unknown model {name!r}: {hint}run `ssl-zoo list` to see every name")


def list_models(
    pattern: str = "*",
    *,
    arch: str | None = None,
    method: str | None = None,
    family: str | None = None,
    commercial_use: bool | None = None,
    status: str | None = None,
) -> list[str]:
    """Registry names matching all the given filters, sorted.

    Args:
        pattern: Shell-style wildcard on the name (``"moco*"``).
        arch: Keep entries of this architecture.
        method: Keep entries whose method contains this text (case-insensitive).
        family: Keep entries of this converter family.
        commercial_use: True keeps only entries whose licence allows commercial use; False only the others.
        status: "public" or "user-supplied".

    Returns:
        The matching names.

    Example:
        >>> list_models("moco*", arch="resnet50")[:2]
        ['moco-v1', 'moco-v2']
    """
    def keep(entry: Entry) -> bool:
        return (
            fnmatch.fnmatchcase(entry.name, pattern.lower())
            and (arch is None or entry.arch == arch)
            and (method is None or method.lower() in entry.method.lower())
            and (family is None or entry.family == family)
            and (commercial_use is None or commercial_use != entry.non_commercial)
            and (status is None or entry.status == status)
        )

    return sorted(name for name, entry in all_entries().items() if keep(entry))
