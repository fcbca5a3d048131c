"""``ssl-zoo hashes list|forget NAME|export``: the first-seen digests recorded in ``hashes.lock.json``."""

from __future__ import annotations

import argparse
from typing import Any

from ..store import cache
from .common import Column, add_command, emit, field, note

HASH_COLUMNS: list[Column] = [("NAME", field("name")), ("FILE", field("file")), ("SHA256", field("sha256")),
                              ("REGISTRY PIN", field("registry_pin"))]


def cmd_hashes_list(args: argparse.Namespace) -> int:
    """``ssl-zoo hashes list``: every recorded digest and whether the registry pins the file itself."""
    from ..store.pinning import recorded_rows

    rows = recorded_rows()
    emit(args, rows, HASH_COLUMNS)
    if not rows:
        note(args, f"no digest recorded in {cache.hash_lock_path()}")
    return 0


def cmd_hashes_forget(args: argparse.Namespace) -> int:
    """``ssl-zoo hashes forget NAME``: drop an entry's recorded digests (the next converted download records)."""
    from ..registry import get_entry
    from ..store.hashes import forget_digests

    name = args.name if args.name in _recorded_names() else get_entry(args.name).name
    removed = forget_digests(name)
    for key in removed:
        print(key)
    note(args, f"forgot {len(removed)} digest(s) of {name}; the next `ssl-zoo pull {name} --force` records "
               "what it downloads once it converts")
    return 0


def _recorded_names() -> set[str]:
    from ..store.hashes import recorded_digests

    return {key.split("/", 1)[0] for key in recorded_digests()}


def cmd_hashes_export(args: argparse.Namespace) -> int:
    """``ssl-zoo hashes export``: the recorded digests as catalogue TOML, for a maintainer to review as pins."""
    from ..store.pinning import export_pins

    print(export_pins(), end="")
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    group = sub.add_parser("hashes", help="show, forget or export the sha256s recorded on first download")
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_command(actions, common, "list", cmd_hashes_list, "every recorded first-seen sha256")
    p = add_command(actions, common, "forget", cmd_hashes_forget, "forget the recorded sha256s of one entry",
                    json_flag=False)
    p.add_argument("name", metavar="NAME")
    add_command(actions, common, "export", cmd_hashes_export, "print the recorded sha256s as catalogue TOML "
                "([[NAME.sources]] tables with sha256) to review and paste into the registry", json_flag=False)
