"""What every layout reader shares: finding files under the root, encoding labels, and the card record."""

from __future__ import annotations

import csv
import dataclasses
import gzip
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ...errors import DatasetError, DatasetLabelError, DatasetLayoutError
from ...evaluation.data import IMAGE_SUFFIXES, Samples
from ..schema import Card, Convention


@dataclasses.dataclass(frozen=True)
class Request:
    """What the caller asked a reader for.

    Attributes:
        root: The folder the user gave (``--root``).
        convention: The label convention (the card's default unless named).
        uncertain: Override of the convention's uncertain-label policy ("" keeps it).
        views: Override of the convention's view filter ("" keeps it).
        size: MedMNIST image size (28, 64, 128, 224).
        seed: Seed of random label draws (LSR policies).
        download: MedMNIST: download a missing file (open licence only).
        progress: Progress bars on stderr.
    """

    root: Path
    convention: Convention
    uncertain: str = ""
    views: str = ""
    size: int = 28
    seed: int = 0
    download: bool = False
    progress: bool = True

    @property
    def policy(self) -> str:
        """The uncertain-label policy in force."""
        return self.uncertain or self.convention.uncertain

    @property
    def view_filter(self) -> str:
        """The view filter in force ("all" or "frontal")."""
        return self.views or self.convention.views


def layout_hint(card: Card) -> str:
    """The expected layout in one line, for error messages."""
    shown = ", ".join(card.layout[:4]) + (", ..." if len(card.layout) > 4 else "")
    return f"{card.name} expects under --root: {shown} (see `ssl-zoo datasets info {card.name}`)"


def require(card: Card, path: Path, root: Path) -> Path:
    """``path`` itself, or a one-line ``DatasetError`` naming it and the expected layout.

    Raises:
        DatasetError: ``path`` does not exist.
    """
    if not path.exists():
        kind = "folder" if not path.suffix else "file"
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        raise DatasetLayoutError(f"{root}: missing {kind} {shown}; {layout_hint(card)}")
    return path


def base_folder(root: Path, top: str) -> Path:
    """``root/top`` when the user gave the folder above the release, else ``root`` itself."""
    return root / top if (root / top).is_dir() else root


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV (plain or ``.gz``) as dicts keyed by the header (blank header cells dropped)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        return [{k: (v or "").strip() for k, v in row.items() if k} for row in csv.DictReader(handle)]


def require_columns(path: Path, rows: list[dict[str, str]], columns: Iterable[str]) -> None:
    """Raise a one-line ``DatasetError`` when ``rows`` lack a column or are empty."""
    if not rows:
        raise DatasetError(f"{path}: no rows; the file needs its header and one row per image")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise DatasetError(f"{path}: no column(s) {missing}; the header has {list(rows[0])}")


def images_in(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))


def check_files(paths: Sequence[Path], what: str, progress: bool = True) -> None:
    """Raise a one-line ``DatasetError`` when some of ``paths`` are not files (a bar counts them: CheXpert has
    over 200,000)."""
    from ...progress import bar

    missing = [p for p in bar(paths, progress=progress, desc="checking images") if not p.is_file()]
    if missing:
        raise DatasetLayoutError(f"{len(missing)} image file(s) listed in {what} are missing (e.g. {missing[0]}); "
                           "extract every image archive into the layout the card shows")


def encode(card: Card, convention: Convention, raw: Sequence[str], where: str) -> np.ndarray:
    """Class ids of raw label values through the convention's (or card's) ``label_map``.

    Raises:
        DatasetError: A value the map does not know, or a class with no sample.
    """
    mapping = convention.label_map or card.label_map
    unknown = sorted({v for v in raw if v not in mapping})
    if unknown:
        raise DatasetLabelError(f"{where}: unknown label value(s) {unknown[:5]} for {card.name}; expected one of "
                           f"{sorted(mapping)}")
    ids = np.asarray([mapping[v] for v in raw], dtype=np.int64)
    classes = classes_of(card, convention)
    empty = [name for i, name in enumerate(classes) if not (ids == i).any()]
    if empty:
        raise DatasetLabelError(f"{where}: class(es) {empty} have no image; {card.name} needs every class present")
    return ids


def classes_of(card: Card, convention: Convention) -> tuple[str, ...]:
    """The class names under ``convention``."""
    return convention.classes or card.classes


def card_record(card: Card, request: Request, **extra: Any) -> dict[str, Any]:
    """What ran, for the results: card name, version, release, convention and its settings, metric."""
    convention = request.convention
    record = {"name": card.name, "version": card.version, "release": card.release, "convention": convention.name,
              "metric": card.metric, "group_key": card.group_key, "root": str(request.root),
              "intensity": dataclasses.asdict(card.intensity)}
    if convention.scored:
        record["scored"] = list(convention.scored)
    if request.policy:
        record["uncertain"] = request.policy
    if request.view_filter != "all":
        record["views"] = request.view_filter
    return {**record, **extra}


def samples(card: Card, request: Request, items: Any, targets: np.ndarray, *, split: Sequence[str] | None,
            groups: Sequence[Any], meta: dict[str, Sequence[Any]] | None = None, task: str = "",
            **record: Any) -> Samples:
    """The ``Samples`` of a card: targets, official split, groups, the card record and the metric."""
    convention = request.convention
    return Samples(items, targets, task or convention.task or card.task, classes_of(card, convention),
                   split=None if split is None else np.asarray(split, dtype=object),
                   groups=np.asarray([str(g) for g in groups], dtype=object),
                   card=card_record(card, request, **record), metric=card.metric,
                   meta=None if meta is None else {k: np.asarray(v, dtype=object) for k, v in meta.items()})
