"""The typed, frozen records of a dataset card, built from TOML tables that may hold no unknown key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import IntensityError, RegistryError
from ..registry.intensity import parse_intensity as recipe_of

TASKS = ("binary", "multiclass", "multilabel", "segmentation")
METRICS = ("auc", "accuracy", "mean_per_class_accuracy", "dice")
UNCERTAIN = ("ones", "zeros", "lsr-ones", "lsr-zeros")
VIEWS = ("all", "frontal")


@dataclass(frozen=True)
class CardIntensity:
    """How a dataset's pixels become the image every reader hands on (shared by evaluation and pre-training).

    Attributes:
        recipe: The pixel scaling in the text form of ``ssl_zoo.intensity`` recipes: "auto" (8-bit files as
            they are), "minmax", "window:LOW,HIGH" (clip in modality units, e.g. Hounsfield units, and map
            linearly) or "file-window" (a DICOM file's VOI window).
        slice: Which 2-D plane of a volume: "middle-axial" (index floor(depth / 2) along the slice axis), or None.
        upsample: Side in pixels that smaller images are enlarged to with NEAREST (MedMNIST's 28-px benchmark),
            or None.
        notes: Anything else, in words (e.g. the papers' normalisation).
    """

    recipe: str = "auto"
    slice: str | None = None
    upsample: int | None = None
    notes: str = ""

    @property
    def window(self) -> tuple[float, float] | None:
        """(low, high) of a "window:LOW,HIGH" recipe, else None."""
        return recipe_of(self.recipe).window


@dataclass(frozen=True)
class Convention:
    """One way the papers turn the dataset's raw labels into targets.

    Attributes:
        name: Short key, e.g. "lsr-ones" or "pleural-effusion".
        description: What it does and which paper uses it.
        labels: Label columns (multilabel) or the single column of a many-to-one task; empty: the card's classes.
        scored: The findings the papers score (AUC averaged over these); empty: every label.
        uncertain: What an uncertain (-1) label becomes: "ones", "zeros", "lsr-ones", "lsr-zeros", or "".
        views: "all", or "frontal" to keep frontal radiographs only.
        label_map: Raw label value -> class id, overriding the card's map (e.g. a merge of two classes).
        classes: Class names after ``label_map``, overriding the card's.
        task: The task after this convention, overriding the card's.
        label_file: A metadata CSV under the root that gives the labels instead of the file names: column 1
            the image file name, column 4 the findings text; exactly "normal" is 0, any other text 1 (abnormal =
            positive, as the medical transfer study reads the Kaggle TB metadata).
    """

    name: str
    description: str
    labels: tuple[str, ...] = ()
    scored: tuple[str, ...] = ()
    uncertain: str = ""
    views: str = "all"
    label_map: Mapping[str, int] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    task: str = ""
    label_file: str = ""


@dataclass(frozen=True)
class Card:
    """Everything ssl_zoo knows about one benchmark dataset.

    Attributes:
        name: The card name (``read_dataset(name, root=...)``).
        title: Full dataset name.
        version: Revision of this card (bumped when the reading changes); recorded with every result.
        release: The dataset release the card reads (e.g. "CheXpert-v1.0-small").
        reader: The layout reader in ``ssl_zoo.datasets.readers`` (one per layout).
        task: One of ``TASKS`` under the default convention.
        modality: "chest X-ray", "fundus", "histology", "CT", ...
        classes: Class or label names, in target order.
        label_map: Raw label value (folder name, file-name suffix, CSV value) -> class id.
        metric: What the papers report (``METRICS``).
        group_key: What a group is: "patient", "study", "volume", "subject" or "image" (one image per patient).
        split_rule: How train/val/test are made, in words.
        layout: The expected files under the root, one path per line ("dir/" for a folder, "*" for many).
        url: Where to get the data.
        licence: The licence, as published.
        registration: True when getting the data needs an account or an agreement: ssl_zoo never downloads it.
        how_to_get: Steps to get the data.
        conventions: The label conventions of the papers; the first is the default.
        intensity: How pixels are read.
        lists: Optional split lists (train, val, test) a paper ships; used as given when all are under the root.
        flag: MedMNIST only: the ``medmnist`` flag.
        files: File name -> md5 for files ssl_zoo may download (open licences only).
        counts: Official images per split ("train", "val", "test"), compared with what is read.
        sources: Where the facts come from.
        notes: Deviations, leaks in the papers' splits, anything a user must know.
    """

    name: str
    title: str
    version: int
    release: str
    reader: str
    task: str
    modality: str
    classes: tuple[str, ...]
    metric: str
    group_key: str
    split_rule: str
    layout: tuple[str, ...]
    url: str
    licence: str
    registration: bool
    how_to_get: str
    conventions: tuple[Convention, ...]
    intensity: CardIntensity = CardIntensity()
    label_map: Mapping[str, int] = field(default_factory=dict)
    lists: tuple[str, ...] = ()
    flag: str = ""
    files: Mapping[str, str] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    sources: tuple[str, ...] = ()
    notes: str = ""

    def convention(self, name: str | None = None) -> Convention:
        """The convention called ``name`` (default: the first).

        Raises:
            DatasetError: An unknown name; the message lists the card's conventions.
        """
        from ..errors import DatasetError

        if name is None:
            return self.conventions[0]
        for convention in self.conventions:
            if convention.name == name:
                return convention
        known = [c.name for c in self.conventions]
        raise DatasetError(f"{self.name}: no convention {name!r}; use one of {known}")


def _reject_unknown(where: str, data: Mapping[str, Any], cls: type) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RegistryError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")


def _build(where: str, cls: type, data: Mapping[str, Any], tuples: tuple[str, ...]) -> Any:
    _reject_unknown(where, data, cls)
    values = {k: (tuple(v) if k in tuples and v is not None else v) for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a required key is missing
        raise RegistryError(f"{where}: {exc}") from None


def parse_convention(where: str, data: Mapping[str, Any]) -> Convention:
    """Build a ``Convention`` from a TOML table, rejecting unknown keys and values."""
    convention = _build(where, Convention, data, ("labels", "scored", "classes"))
    if convention.uncertain and convention.uncertain not in UNCERTAIN:
        raise RegistryError(f"{where}: uncertain must be one of {UNCERTAIN}")
    if convention.views not in VIEWS:
        raise RegistryError(f"{where}: views must be one of {VIEWS}")
    if convention.task and convention.task not in TASKS:
        raise RegistryError(f"{where}: task must be one of {TASKS}")
    return convention


def parse_intensity(where: str, data: Mapping[str, Any]) -> CardIntensity:
    """Build a ``CardIntensity`` from a TOML table, rejecting unknown keys and malformed recipes."""
    intensity = _build(where, CardIntensity, data, ())
    try:
        recipe_of(intensity.recipe)  # the one grammar of recipes, shared with registry entries
    except IntensityError as exc:
        raise RegistryError(f"{where}: {exc}") from None
    return intensity


def parse_card(name: str, data: Mapping[str, Any]) -> Card:
    """Build a ``Card`` named ``name`` from its TOML table.

    Raises:
        RegistryError: An unknown key, a bad value or a missing required key.
    """
    where = f"dataset card [{name}]"
    fields = dict(data)
    fields["conventions"] = tuple(parse_convention(f"{where} convention {i}", c)
                                  for i, c in enumerate(fields.get("conventions", ())))
    fields["intensity"] = parse_intensity(f"{where} intensity", fields.get("intensity", {}))
    card = _build(where, Card, {"name": name, **fields}, ("classes", "layout", "sources", "lists"))
    _check_card(where, card)
    return card


def _check_card(where: str, card: Card) -> None:
    if card.task not in TASKS:
        raise RegistryError(f"{where}: task must be one of {TASKS}")
    if card.metric not in METRICS:
        raise RegistryError(f"{where}: metric must be one of {METRICS}")
    if not card.conventions:
        raise RegistryError(f"{where}: at least one convention (the default) is required")
    if card.files and card.registration:
        raise RegistryError(f"{where}: a dataset that needs registration has no downloadable files")
