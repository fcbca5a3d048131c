"""One small rule list per upstream method; knows nothing about file formats.

Each module defines ``FAMILIES: dict[str, Family]``; a registry entry names its family in ``family = "..."``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ...errors import RegistryError


@dataclass(frozen=True)
class Family:
    """A converter family: the rules that map one upstream layout onto torchvision key names."""

    name: str
    rules: tuple[Any, ...]
    summary: str

    def describe(self) -> list[str]:
        """The rules in words, for the model card."""
        return [rule.describe() for rule in self.rules]


@functools.cache
def all_families() -> dict[str, Family]:
    """Every converter family by name."""
    from . import contrastive, foreign, masked, medical, supervised

    families: dict[str, Family] = {}
    for module in (supervised, contrastive, masked, medical, foreign):
        families.update(module.FAMILIES)
    return families


def get_family(name: str) -> Family:
    """The converter family called ``name``.

    Raises:
        RegistryError: If no family has that name (a catalog entry names a family that does not exist).
    """
    families = all_families()
    if name not in families:
        raise RegistryError(f"unknown converter family {name!r}; known: {sorted(families)}")
    return families[name]
