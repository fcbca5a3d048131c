"""The benchmark datasets of the papers as cards (``cards/*.toml``), read with their own labels and splits.

``read_card("chexpert", root="/data/CheXpert-v1.0-small")`` returns ``Samples`` with the official split, the
grouping key (patient, study, volume), the card record and the metric. ssl_zoo never downloads a dataset whose
licence needs an agreement; ``ssl-zoo datasets info NAME`` says where to get it and how to lay it out.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from ..errors import RegistryError, UnknownDatasetError
from .schema import UNCERTAIN, VIEWS, Card, CardIntensity, Convention, parse_card

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["Card", "CardIntensity", "Convention", "all_cards", "get_card", "layout_tree", "read_card"]

CARDS_DIR = Path(__file__).parent / "cards"
ALIAS_PREFIX = "medmnist/"
VIEW_READERS = ("chexpert-csv", "mimic-cxr-csv")  # the layouts that record each image's view


@functools.cache
def all_cards() -> dict[str, Card]:
    """Every dataset card by name, parsed and validated once per process.

    Raises:
        RegistryError: A card file breaks the schema or defines a name twice.
    """
    cards: dict[str, Card] = {}
    for path in sorted(CARDS_DIR.glob("*.toml")):
        with path.open("rb") as handle:
            for name, table in tomllib.load(handle).items():
                if name in cards:
                    raise RegistryError(f"{path.name}: dataset card [{name}] is defined twice")
                cards[name] = parse_card(name, table)
    return cards


def get_card(name: str) -> Card:
    """The card called ``name`` (``medmnist/<flag>`` is accepted for ``<flag>``).

    Raises:
        UnknownDatasetError: No such card; the message suggests close names.
    """
    import difflib

    cards = all_cards()
    key = name[len(ALIAS_PREFIX):] if name.startswith(ALIAS_PREFIX) else name
    if key not in cards:
        close = difflib.get_close_matches(key, list(cards), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `ssl-zoo datasets` lists them"
        raise UnknownDatasetError(f"no dataset card {name!r}{hint}")
    return cards[key]


def read_card(name: str, root: str | Path, *, convention: str | None = None, uncertain: str | None = None,
              views: str | None = None, size: int | None = None, seed: int = 0, download: bool = False,
              progress: bool = True) -> Any:
    """Read the dataset of card ``name`` from ``root`` with one of its conventions.

    Args:
        name: A card name (``ssl-zoo datasets``).
        root: The folder holding the card's layout (``ssl-zoo datasets info NAME``).
        convention: A convention of the card; default the card's first (the papers' default).
        uncertain: Override the uncertain-label policy ("ones", "zeros", "lsr-ones", "lsr-zeros").
        views: Override the view filter ("all" or "frontal").
        size: MedMNIST image size (28, 64, 128, 224; default 28).
        seed: Seed of the soft-label draws (LSR policies).
        download: MedMNIST only: fetch a missing file from Zenodo (md5 checked).
        progress: Progress bars on stderr.

    Returns:
        ``Samples`` with ``split`` (official lists) or None, ``groups``, ``card`` and ``metric``.

    Raises:
        UnknownDatasetError: No such card. DatasetError: the root lacks the layout, or the labels break the card.

    Example:
        >>> data = read_card("chexpert", "/data/CheXpert-v1.0-small", convention="u-ones")
    """
    from ..errors import DatasetError
    from .readers import reader
    from .readers.common import Request

    card = get_card(name)
    root = Path(root).expanduser()
    if download and card.files:
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder; give --root the folder holding {card.name} "
                           f"(see `ssl-zoo datasets info {card.name}`)")
    _check_options(card, uncertain=uncertain, views=views, size=size, download=download)
    request = Request(root, card.convention(convention), uncertain or "", views or "", size or 28, seed, download,
                      progress)
    return reader(card.reader)(card, request)


def _check_options(card: Card, *, uncertain: str | None, views: str | None, size: int | None,
                   download: bool) -> None:
    """Options that do not apply to ``card`` are an error, not silently ignored."""
    from ..errors import DatasetError

    if uncertain and uncertain not in UNCERTAIN:
        raise DatasetError(f"unknown uncertain-label policy {uncertain!r}; use one of {UNCERTAIN}")
    if uncertain and not any(c.uncertain for c in card.conventions):
        raise DatasetError(f"{card.name} has no uncertain labels; --uncertain applies to chexpert and mimic-cxr")
    if views and views not in VIEWS:
        raise DatasetError(f"unknown view filter {views!r}; use one of {VIEWS}")
    if views and card.reader not in VIEW_READERS:
        raise DatasetError(f"{card.name} has no view filter; --views applies to chexpert and mimic-cxr")
    if (size or download) and not card.files:
        raise DatasetError(f"--size and --download apply to MedMNIST cards only, not {card.name}")


def layout_tree(card: Card) -> str:
    """The card's expected layout drawn as a tree under ``<root>/``."""
    tree: dict[str, Any] = {}
    for line in card.layout:
        node = tree
        parts = line.rstrip("/").split("/")
        for i, part in enumerate(parts):
            is_dir = i < len(parts) - 1 or line.endswith("/")
            node = node.setdefault(part + ("/" if is_dir else ""), {})
    return "\n".join(["<root>/", *_draw(tree, "")])


def _draw(tree: dict[str, Any], prefix: str) -> list[str]:
    lines = []
    for i, (name, children) in enumerate(tree.items()):
        last = i == len(tree) - 1
        lines.append(f"{prefix}{'└── ' if last else '├── '}{name}")
        lines += _draw(children, prefix + ("    " if last else "│   "))
    return lines
