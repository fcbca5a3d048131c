"""`ssl-zoo presets`: every protocol preset with its protocols' settings, sources and notes."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import add_command


def cmd_presets(args: argparse.Namespace) -> int:
    """``ssl-zoo presets``: every protocol preset, its protocols' settings and its sources."""
    from ..evaluation.presets import list_presets

    rows = list_presets()
    if args.name:
        rows = [r for r in rows if r["name"] == args.name] or _unknown_preset(args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        default = f" (default for {', '.join(row['defaults_for'])})" if row["defaults_for"] else ""
        print(f"{row['name']}{default}: {row['title']}")
        for protocol, settings in row["protocols"].items():
            print(f"  [{protocol}] " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        print("\n".join([f"  source: {u}" for u in row["sources"]] + [f"  note: {n}" for n in row["notes"]]))
    return 0


def _unknown_preset(name: str) -> list:
    from ..evaluation.presets import read_preset

    read_preset(name)  # raises UnknownPresetError listing the valid names
    return []


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``ssl-zoo presets`` to the `ssl-zoo` parser."""
    p = add_command(sub, common, "presets", cmd_presets, "protocol presets: settings and upstream sources")
    p.add_argument("name", nargs="?", help="show this preset only")
