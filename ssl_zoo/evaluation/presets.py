"""Protocol presets: named, frozen records of every default of one paper's evaluation code.

A preset is a TOML file ``presets/<name>.toml`` (``ssl-transfer``, ``benchmark-transfer``, ``magical``) with a
``[preset]`` table (``title``, ``sources``, ``notes``) and one table per protocol it covers (``[linear]``,
``[finetune]``, ...). A protocol's table gives fields of that protocol's frozen settings dataclass
(``PROTOCOL_SETTINGS``); a field it leaves out keeps the dataclass default. ``resolve`` turns (protocol, preset,
overrides) into the ``Resolved`` settings a protocol runs with; its ``record()`` is written with the results, so a
reader sees the preset, every effective setting and which ones were overridden.
"""

from __future__ import annotations

import dataclasses
import importlib
import tomllib
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import PresetError, UnknownPresetError

PRESET_DIR = Path(__file__).with_name("presets")

# protocol -> "module:Class" of its frozen settings dataclass (imported lazily: the modules import torch late)
PROTOCOL_SETTINGS: dict[str, str] = {
    "linear": "ssl_zoo.evaluation.probe:LinearSettings",
    "finetune": "ssl_zoo.evaluation.finetune:FinetuneSettings",
    "fewshot": "ssl_zoo.evaluation.fewshot:FewshotSettings",
    "segment": "ssl_zoo.evaluation.segment:SegmentSettings",
    "saliency": "ssl_zoo.evaluation.saliency:SaliencySettings",
    "invariance": "ssl_zoo.evaluation.invariance:InvarianceSettings",
    "multiview": "ssl_zoo.evaluation.invariance:MultiviewSettings",
    "reconstruction": "ssl_zoo.evaluation.reconstruction:ReconstructionSettings",
}

# protocol -> the preset of the paper the protocol comes from
DEFAULT_PRESET: dict[str, str] = {
    "linear": "ssl-transfer",
    "finetune": "ssl-transfer",
    "fewshot": "ssl-transfer",
    "segment": "benchmark-transfer",
    "saliency": "ssl-transfer",
    "invariance": "ssl-transfer",
    "multiview": "ssl-transfer",
    "reconstruction": "ssl-transfer",
}


@dataclass(frozen=True)
class Resolved:
    """The settings one protocol runs with, and where they came from.

    Attributes:
        preset: The preset's name.
        protocol: The protocol's name (a key of ``PROTOCOL_SETTINGS``).
        settings: The protocol's frozen settings dataclass, overrides applied.
        overridden: Names of the fields given as overrides.
        sources: The upstream code the preset follows (URLs / paths).
        notes: Bugs fixed and deviations from the upstream code.
    """

    preset: str
    protocol: str
    settings: Any
    overridden: tuple[str, ...]
    sources: tuple[str, ...]
    notes: tuple[str, ...]

    def record(self) -> dict[str, Any]:
        """``{"preset", "protocol", "settings", "overridden", "sources", "notes"}``: what a results file holds."""
        return {"preset": self.preset, "protocol": self.protocol, "settings": dataclasses.asdict(self.settings),
                "overridden": list(self.overridden), "sources": list(self.sources), "notes": list(self.notes)}


def settings_class(protocol: str) -> type:
    """The settings dataclass of ``protocol``.

    Raises:
        UnknownPresetError: ``protocol`` is not a key of ``PROTOCOL_SETTINGS``.
    """
    if protocol not in PROTOCOL_SETTINGS:
        raise UnknownPresetError(f"unknown protocol {protocol!r}; valid protocols: {', '.join(sorted(PROTOCOL_SETTINGS))}")
    module, name = PROTOCOL_SETTINGS[protocol].split(":")
    return getattr(importlib.import_module(module), name)


def preset_names() -> list[str]:
    """The names of the preset files, sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


@cache
def read_preset(name: str) -> dict[str, Any]:
    """The parsed TOML of preset ``name`` (its tables checked for unknown protocols).

    Raises:
        UnknownPresetError: No preset of that name.
        PresetError: The file has no ``[preset]`` table or a table for an unknown protocol.
    """
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise UnknownPresetError(f"unknown preset {name!r}; valid presets: {', '.join(preset_names())}")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unknown = sorted(set(data) - set(PROTOCOL_SETTINGS) - {"preset"})
    if "preset" not in data or unknown:
        raise PresetError(f"{path}: needs a [preset] table and protocol tables among {sorted(PROTOCOL_SETTINGS)}; "
                          f"unknown tables: {unknown}")
    return data


def resolve(protocol: str, preset: str | None = None, **overrides: Any) -> Resolved:
    """The settings of ``protocol`` under ``preset`` (default ``DEFAULT_PRESET[protocol]``), overrides applied.

    Args:
        protocol: "linear", "finetune", "fewshot", "segment", ...
        preset: A preset name; None: the protocol's own paper.
        **overrides: Single fields to change; a value of None means "not given" and is ignored.

    Returns:
        The ``Resolved`` settings.

    Raises:
        UnknownPresetError: Unknown protocol or preset, or a preset without a table for ``protocol``.
        PresetError: A table or an override names a field the settings lack, or gives a value of the wrong type.

    Example:
        >>> resolve("linear", C=0.5).record()["overridden"]
        ['C']
    """
    cls = settings_class(protocol)
    name = preset or DEFAULT_PRESET[protocol]
    data = read_preset(name)
    if protocol not in data:
        having = [p for p in preset_names() if protocol in read_preset(p)]
        raise UnknownPresetError(f"preset {name!r} has no [{protocol}] settings; presets for {protocol}: "
                                 f"{', '.join(having)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    fields = {**build_fields(cls, data[protocol], f"preset {name!r} [{protocol}]"),
              **build_fields(cls, given, f"{protocol} override")}
    info = data["preset"]
    return Resolved(name, protocol, cls(**fields), tuple(given), tuple(info.get("sources", ())),
                    tuple(info.get("notes", ())))


def build_fields(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """``values`` checked against the fields of ``cls`` and converted to their types (lists -> tuples, int -> float).

    Raises:
        PresetError: An unknown field or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise PresetError(f"{where}: unknown setting(s) {unknown}; known: {', '.join(known)}")
    return {k: convert(v, hints[k], f"{where}: {k}") for k, v in values.items()}


def convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` (bool, int, float, str, tuple[...], optional); PresetError when it does not fit."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for option in options:
        if option is type(None) and value is None:
            return None
        if typing.get_origin(option) is tuple and isinstance(value, (list, tuple)):
            return tuple(value)
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option in (bool, int, str) and type(value) is option:
            return value
    raise PresetError(f"{where} must be {hint}, got {value!r}; fix the preset table or the option")


def list_presets() -> list[dict[str, Any]]:
    """Every preset with its title, sources, notes and the effective settings of each protocol it covers.

    Example:
        >>> [p["name"] for p in list_presets()]
        ['benchmark-transfer', 'magical', 'ssl-transfer']
    """
    rows = []
    for name in preset_names():
        data = read_preset(name)
        protocols = {p: resolve(p, name).record()["settings"] for p in PROTOCOL_SETTINGS if p in data}
        rows.append({"name": name, "title": data["preset"].get("title", ""),
                     "sources": list(data["preset"].get("sources", ())), "notes": list(data["preset"].get("notes", ())),
                     "defaults_for": sorted(p for p, n in DEFAULT_PRESET.items() if n == name), "protocols": protocols})
    return rows
