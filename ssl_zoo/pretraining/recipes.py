"""Each method's paper recipe and the named presets of other papers, read from ``presets.toml``.

A ``Recipe`` is everything around a method's loss that decides what it trains to: optimiser, learning-rate
scaling, warm-up, schedule, weight decay, clipping, run length, input normalisation, checkpoint selection.
``resolve(method, preset, **overrides)`` gives the effective recipe; its ``record()`` (a plain dict) goes
into the model card with every setting, the sources and each deviation from the paper.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import PresetError, UnknownPresetError

DEFAULT_PRESET = "paper"
OPTIMIZERS = ("sgd", "lars", "lamb", "adam", "adamw")
_CHOICES = {"optimizer": OPTIMIZERS, "schedule": ("cosine", "constant"), "schedule_unit": ("step", "epoch"),
            "select": ("last", "best-validation")}


@dataclass(frozen=True)
class Recipe:
    """The settings around a method's loss (field meanings: the header of ``presets.toml``)."""

    optimizer: str = "sgd"
    lr: float = 0.03
    reference_batch: int = 0
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    weight_decay_end: float | None = None
    exclude_norm_bias: bool = False
    bias_lr_scale: float = 1.0
    warmup_epochs: float = 0.0
    warmup_start: float = 0.0
    final_lr: float = 0.0
    schedule: str = "cosine"
    schedule_unit: str = "step"
    clip: float | None = None
    epochs: int = 100
    batch_size: int = 256
    image_size: int = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    select: str = "last"
    early_stop: int | None = None
    views: str = ""
    init_required: bool = False

    def peak_lr(self, batch_size: int) -> float:
        """The peak learning rate for ``batch_size``: linear scaling from ``reference_batch`` when it is set."""
        return self.lr * batch_size / self.reference_batch if self.reference_batch else self.lr


@dataclass(frozen=True)
class Resolved:
    """A method's effective recipe, its options, and where each came from."""

    method: str
    preset: str
    recipe: Recipe
    options: dict[str, Any]
    overridden: tuple[str, ...] = ()
    paper: Recipe = field(default_factory=Recipe)
    sources: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def deviations(self) -> list[str]:
        """Each way this run departs from the method's paper recipe, with why."""
        out = [f"{name} {getattr(self.recipe, name)!r} "
               f"({'set by the user' if name in self.overridden else f'preset {self.preset}'}; "
               f"paper recipe: {getattr(self.paper, name)!r})" for name in _changed(self.paper, self.recipe)]
        if self.recipe.warmup_epochs >= self.recipe.epochs > 0:
            out.append(f"the {self.recipe.warmup_epochs:g}-epoch warm-up is not shorter than the run "
                       f"({self.recipe.epochs} epochs): the learning rate never reaches its peak")
        return out + list(self.notes)

    def record(self, batch_size: int | None = None) -> dict[str, Any]:
        """A plain dict for the training record: preset, settings, peak lr, options, sources, deviations."""
        settings = dataclasses.asdict(self.recipe)
        batch = batch_size or self.recipe.batch_size
        return {"preset": self.preset, "method": self.method, "settings": settings, "options": dict(self.options),
                "peak_lr": self.recipe.peak_lr(batch), "overridden": list(self.overridden),
                "sources": list(self.sources), "deviations": self.deviations()}


def _changed(paper: Recipe, recipe: Recipe) -> list[str]:
    return [f.name for f in dataclasses.fields(Recipe) if getattr(paper, f.name) != getattr(recipe, f.name)]


@lru_cache(maxsize=1)
def _tables() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("presets.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def preset_names() -> list[str]:
    return sorted(_tables())


def _method_table(preset: str, method: str) -> dict[str, Any]:
    tables = _tables()
    if preset not in tables:
        raise UnknownPresetError(f"unknown pre-training preset {preset!r}; choose one of {preset_names()} "
                                 "(ssl-zoo pretrain --list-presets)")
    table = tables[preset].get(method)
    if not isinstance(table, dict):
        methods = [k for k, v in tables[preset].items() if isinstance(v, dict)]
        raise UnknownPresetError(f"preset {preset!r} has no recipe for {method}; it covers {methods}")
    return table


def _recipe(base: Recipe, table: dict[str, Any], where: str) -> Recipe:
    """``base`` with the fields of ``table`` (TOML arrays become tuples); unknown fields or choices raise."""
    known = {f.name for f in dataclasses.fields(Recipe)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()
              if k not in ("options", "sources", "notes")}
    unknown = sorted(set(values) - known)
    if unknown:
        raise PresetError(f"{where}: unknown recipe field(s) {unknown}; known: {sorted(known)}")
    for name, choices in _CHOICES.items():
        if name in values and values[name] not in choices:
            raise PresetError(f"{where}: {name} {values[name]!r} is not one of {list(choices)}")
    return dataclasses.replace(base, **values)


def resolve(method: str, preset: str | None = None, **overrides: Any) -> Resolved:
    """The effective recipe of ``method`` under ``preset`` (default: the paper's) with ``overrides``.

    Args:
        method: A method name ("moco-v2", "spark", ...).
        preset: A preset name from ``presets.toml``; None is ``"paper"``.
        overrides: Recipe fields to set (values of None are ignored, so CLI defaults pass through).

    Returns:
        The resolved recipe with its options, sources and deviations.

    Raises:
        UnknownPresetError: A preset that does not exist or does not cover ``method``.
        PresetError: An override or table field that is not a recipe field or not a valid choice.

    Example:
        >>> resolve("moco-v2", "wolf-lidc").recipe.lr
        0.015
    """
    name = preset or DEFAULT_PRESET
    paper_table = _method_table(DEFAULT_PRESET, method)
    paper = _recipe(Recipe(), paper_table, f"preset paper.{method}")
    table = paper_table if name == DEFAULT_PRESET else _method_table(name, method)
    recipe = paper if name == DEFAULT_PRESET else _recipe(paper, table, f"preset {name}.{method}")
    given = {k: v for k, v in overrides.items() if v is not None}
    recipe = _recipe(recipe, given, "override")
    options = {**paper_table.get("options", {}), **(table.get("options", {}) if table is not paper_table else {})}
    sources = list(paper_table.get("sources", []))
    notes = list(paper_table.get("notes", []))
    if table is not paper_table:
        sources += [*_tables()[name].get("sources", []), *table.get("sources", [])]
        notes += table.get("notes", [])
    return Resolved(method, name, recipe, options, tuple(sorted(given)), paper, tuple(sources), tuple(notes))


def list_presets() -> list[dict[str, Any]]:
    """Every preset: name, title, the methods it covers, and its sources."""
    out = []
    for name, table in sorted(_tables().items()):
        methods = [k for k, v in table.items() if isinstance(v, dict)]
        sources = [*table.get("sources", []), *(s for m in methods for s in table[m].get("sources", []))]
        out.append({"preset": name, "title": table.get("title", ""), "methods": methods, "sources": sources})
    return out
