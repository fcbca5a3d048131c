"""``ssl-zoo list|info|pull|convert|verify|mirror export``: the catalogue and what the cache holds."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from .. import inventory
from ..registry import Entry, get_entry, list_models
from ..store import cache
from .common import Column, add_command, emit, field, note, plural, positive_int, progress_enabled, terminal_width


def _licence(record: dict[str, Any]) -> str:
    return record["license"] + (" (non-commercial)" if record["non_commercial"] else "")


LIST_COLUMNS: list[Column] = [("NAME", field("name")), ("ARCH", field("arch")), ("METHOD", field("method")),
                              ("PRETRAINING DATA", field("pretraining_data")), ("LICENCE", _licence),
                              ("STATUS", field("status"))]
PULL_COLUMNS: list[Column] = [("NAME", field("name")), ("STATUS", field("status")),
                              ("SECONDS", lambda r: f"{r['seconds']:.1f}"),
                              ("FOLDER OR ERROR", lambda r: r["folder"] or r["error"])]
VERIFY_COLUMNS: list[Column] = [("NAME", field("name")), ("STATUS", field("status")), ("ITEM", field("item")),
                                ("MESSAGE", field("message"))]


def _list_record(entry: Entry) -> dict[str, Any]:
    return {"name": entry.name, "arch": entry.arch, "method": entry.method, "pretraining_data": entry.pretraining_data,
            "license": entry.license, "non_commercial": entry.non_commercial,
            "status": inventory.entry_state(entry.name).status}


STATUS_LEGEND = ("STATUS: converted = model folder ready to load; damaged = model folder fails the checks every "
                 "load runs (size, header): `ssl-zoo pull NAME --force`; downloaded = upstream file cached, not "
                 "converted yet; user-supplied = no public download, bring the file (`ssl-zoo info NAME`); "
                 "- = nothing cached")


def cmd_list(args: argparse.Namespace) -> int:
    """``ssl-zoo list``: the registry as a table, filtered."""
    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    names = list_models(pattern, arch=args.arch, method=args.method, commercial_use=True if args.commercial else None)
    emit(args, [_list_record(get_entry(n)) for n in names], LIST_COLUMNS)
    if not names:
        print("no entry matches; run `ssl-zoo list` to see every name", file=sys.stderr)
    elif not args.json:
        note(args, textwrap.fill(STATUS_LEGEND, terminal_width()))
    return 0


def _scalar(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "-"
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def _render(value: Any, indent: int = 0) -> list[str]:
    """Nested dicts and lists as indented ``key: value`` lines; list items start with "- "."""
    pad = " " * indent
    if isinstance(value, list):
        lines: list[str] = []
        for item in value:
            sub = _render(item, indent + 2) if isinstance(item, (dict, list)) else [f"{pad}  {item}"]
            lines += [f"{pad}- {sub[0][indent + 2:]}", *sub[1:]]
        return lines
    width = max(map(len, value), default=0)
    lines = []
    for key, item in value.items():
        label = f"{pad}{key.replace('_', ' ')}:"
        if isinstance(item, (dict, list)) and item:
            lines += [label, *_render(item, indent + 2)]
        else:
            lines.append(f"{label.ljust(indent + width + 2)}{_scalar(item)}")
    return lines


def cmd_info(args: argparse.Namespace) -> int:
    """``ssl-zoo info NAME``: every registry field and where the entry's files are on disk."""
    record = inventory.entry_report(args.name)
    print(json.dumps(record, indent=2) if args.json else "\n".join(_render(record)))
    return 0


def _skipped(name: str) -> dict[str, Any]:
    return {"name": name, "status": "skipped (user-supplied)", "seconds": 0.0, "folder": None,
            "error": f"no public download: {get_entry(name).how_to_get}; then `ssl-zoo convert {name} --from-file PATH`"}


def _pull_targets(args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]]]:
    if not args.names and not args.all:
        args.parser.error("name the entries to pull (see `ssl-zoo list`), or give --all")
    if args.names and args.all:
        args.parser.error("give entry names or --all, not both")
    if not args.all:
        return args.names, []
    # Without a mirror, a user-supplied entry with nothing cached can only fail: report it, do not fail on it.
    names = list_models()
    manual = set() if cache.mirror_base() else {n for n in names if inventory.entry_state(n).status == "user-supplied"}
    return [n for n in names if n not in manual], [_skipped(n) for n in sorted(manual)]


def cmd_pull(args: argparse.Namespace) -> int:
    """``ssl-zoo pull``: download and convert entries in parallel; a summary table; exit 1 if any failed."""
    from ..pulling import pull_many

    names, skipped = _pull_targets(args)
    at_once = f", {min(args.jobs, len(names))} at a time" if len(names) > 1 else ""
    note(args, f"pulling {plural(len(names), 'entry', 'entries')}{at_once}")
    results = pull_many(names, jobs=args.jobs, force=args.force, require_hashes=args.require_hashes,
                        progress=progress_enabled(args))
    records = [{**dataclasses.asdict(r), "folder": r.folder and str(r.folder)} for r in results] + skipped
    emit(args, records, PULL_COLUMNS)
    if not args.json:  # the table may cut an error to fit the terminal: each one whole, where it can be read
        for result in results:
            if not result.ok:
                named = result.error.startswith(f"{result.name} ")
                print(result.error if named else f"{result.name}: {result.error}", file=sys.stderr)
    return 1 if any(not r.ok for r in results) else 0


def cmd_convert(args: argparse.Namespace) -> int:
    """``ssl-zoo convert NAME --from-file PATH``: convert a checkpoint the user downloaded; print the folder."""
    from ..pulling import convert_file

    print(convert_file(args.name, Path(args.from_file)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``ssl-zoo verify``: re-hash cached files and model folders; exit 1 on any mismatch or missing file."""
    if args.fix:
        _fix(args)
    results = inventory.verify(args.names or None)
    if not results:
        print(f"nothing cached under {cache.home()}: nothing to verify", file=sys.stderr)
    emit(args, [{**dataclasses.asdict(r), "item": str(r.item)} for r in results], VERIFY_COLUMNS)
    if not args.json:  # as for pull: the table may cut a problem's message, so each one is also printed whole
        for result in results:
            if not result.ok:
                print(f"{result.name}: {result.message}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


def _fix(args: argparse.Namespace) -> None:
    from ..store.leftovers import clean_bundle_stagings, clean_entry

    removed = [path for name in (args.names or list_models()) for path in clean_entry(get_entry(name).name)]
    for path in removed + clean_bundle_stagings():
        note(args, f"removed stale temporary {path}")


def cmd_mirror_export(args: argparse.Namespace) -> int:
    """``ssl-zoo mirror export DIR``: write cached upstream files in the SSL_ZOO_MIRROR layout."""
    written = inventory.export_mirror(Path(args.dir), args.models)
    for path in written:
        print(path)
    note(args, f"wrote {len(written)} file(s) under {args.dir} (files already up to date are not listed); "
                f"serve it with SSL_ZOO_MIRROR={Path(args.dir).resolve().as_uri()}")
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "list", cmd_list, "list the registry entries and what the cache holds. "
                    + STATUS_LEGEND)
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="wildcard on the name ('moco*'); plain text matches anywhere in the name")
    p.add_argument("--arch", help="only this architecture (resnet50, resnet18, densenet121)")
    p.add_argument("--method", help="only methods containing this text")
    p.add_argument("--commercial", action="store_true", help="only entries whose licence allows commercial use")
    p = add_command(sub, common, "info", cmd_info, "every registry field of an entry and where its files are")
    p.add_argument("name", metavar="NAME")
    p = add_command(sub, common, "pull", cmd_pull, "download and convert entries (in parallel)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every registry entry")
    p.add_argument("--jobs", "-j", type=positive_int, default=4, help="entries worked on at once (default 4)")
    p.add_argument("--force", action="store_true", help="convert again even if the model folder exists")
    p.add_argument("--require-hashes", action="store_true",
                   help="refuse files without a full sha256 pinned or recorded (an 8-hex prefix is not enough)")
    p = add_command(sub, common, "convert", cmd_convert, "convert a checkpoint you downloaded yourself", json_flag=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from-file", required=True, metavar="PATH", help="the downloaded upstream file (a TF checkpoint: its .zip, folder or .index)")
    p = add_command(sub, common, "verify", cmd_verify, "re-hash cached downloads and model folders")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every entry with anything cached")
    p.add_argument("--fix", action="store_true", help="first remove temporaries that killed pulls and bundle "
                   "installs left behind (those running right now are left alone)")
    mirror = sub.add_parser("mirror", help="mirror helpers").add_subparsers(dest="action", required=True)
    p = add_command(mirror, common, "export", cmd_mirror_export, "copy cached downloads into a mirror folder "
                 "(<DIR>/<name>/<file>, the layout SSL_ZOO_MIRROR serves)", json_flag=False)
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--models", nargs="+", metavar="NAME", help="default: every entry with a downloaded file")
