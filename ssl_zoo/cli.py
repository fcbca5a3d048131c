"""The ``ssl-zoo`` command: parsing and presentation only; every command calls a library function.

Results go to stdout, progress bars and errors to stderr. A known error prints one line
``ssl-zoo: error: <message>``; the traceback only when ``SSL_ZOO_DEBUG=1``. ``ssl-zoo list`` imports no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from . import __version__, cache, inventory
from .errors import SslZooError
from .registry import Entry, get_entry, list_models

INTERRUPTED = "interrupted; nothing half-written was kept, run the command again to resume"

# First match wins: (exception type, exit code, fixed message or None for the exception's own one-liner).
KNOWN_ERRORS: tuple[tuple[type[BaseException], int, str | None], ...] = (
    (KeyboardInterrupt, 130, INTERRUPTED),
    (SslZooError, 1, None),
    (FileNotFoundError, 1, None),
    (PermissionError, 1, None),
)

EXIT_CODES = """\
exit codes: 0 success; 1 an error, or an entry that pull or verify found failed; 2 a usage error;
130 interrupted; 141 stdout closed early (`| head`).
`pull --all` reports user-supplied entries that have no file as "skipped (user-supplied)" without failing;
named explicitly, they fail with the instruction to get the file.
environment: SSL_ZOO_HOME (cache), SSL_ZOO_MIRROR (http(s):// or file:// base), SSL_ZOO_OFFLINE=1,
SSL_ZOO_QUIET=1 (no progress bars), SSL_ZOO_DEBUG=1 (tracebacks),
SSL_ZOO_SOURCE=auto|hub|upstream (where converted weights of a registry name come from)."""

Column = tuple[str, Callable[[dict[str, Any]], object]]


def _field(key: str) -> Callable[[dict[str, Any]], object]:
    return lambda record: record[key]


def _licence(record: dict[str, Any]) -> str:
    return record["license"] + (" (non-commercial)" if record["non_commercial"] else "")


LIST_COLUMNS: list[Column] = [("NAME", _field("name")), ("ARCH", _field("arch")), ("METHOD", _field("method")),
                              ("PRETRAINING DATA", _field("pretraining_data")), ("LICENCE", _licence),
                              ("STATUS", _field("status"))]
PULL_COLUMNS: list[Column] = [("NAME", _field("name")), ("STATUS", _field("status")),
                              ("SECONDS", lambda r: f"{r['seconds']:.1f}"),
                              ("FOLDER OR ERROR", lambda r: r["folder"] or r["error"])]
VERIFY_COLUMNS: list[Column] = [("NAME", _field("name")), ("STATUS", _field("status")), ("ITEM", _field("item")),
                                ("MESSAGE", _field("message"))]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Plain-text table: left-aligned columns two spaces apart, a dashed rule under the header."""
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _emit(args: argparse.Namespace, records: list[dict[str, Any]], columns: list[Column]) -> None:
    if args.json:
        print(json.dumps(records, indent=2, default=str))
    elif records:
        print(format_table([h for h, _ in columns], ([get(r) for _, get in columns] for r in records)))


def _progress(args: argparse.Namespace) -> bool:
    return not (getattr(args, "quiet", False) or cache.env_flag(cache.QUIET_ENV))


def _note(args: argparse.Namespace, message: str) -> None:
    if _progress(args):
        print(message, file=sys.stderr)


def _list_record(entry: Entry) -> dict[str, Any]:
    return {"name": entry.name, "arch": entry.arch, "method": entry.method, "pretraining_data": entry.pretraining_data,
            "license": entry.license, "non_commercial": entry.non_commercial,
            "status": inventory.entry_state(entry.name).status}


def cmd_list(args: argparse.Namespace) -> int:
    """``ssl-zoo list``: the registry as a table, filtered."""
    pattern = args.pattern if any(c in args.pattern for c in "*?[") else f"*{args.pattern}*"
    names = list_models(pattern, arch=args.arch, method=args.method, commercial_use=True if args.commercial else None)
    _emit(args, [_list_record(get_entry(n)) for n in names], LIST_COLUMNS)
    if not names:
        print("no entry matches; run `ssl-zoo list` to see every name", file=sys.stderr)
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
    if bool(args.names) == bool(args.all):
        args.parser.error("give entry names or --all (not both)")
    if not args.all:
        return args.names, []
    # Without a mirror, a user-supplied entry with nothing cached can only fail: report it, do not fail on it.
    names = list_models()
    manual = set() if cache.mirror_base() else {n for n in names if inventory.entry_state(n).status == "user-supplied"}
    return [n for n in names if n not in manual], [_skipped(n) for n in sorted(manual)]


def cmd_pull(args: argparse.Namespace) -> int:
    """``ssl-zoo pull``: download and convert entries in parallel; a summary table; exit 1 if any failed."""
    from .pulling import pull_many

    names, skipped = _pull_targets(args)
    _note(args, f"pulling {len(names)} entries, {args.jobs} at a time")
    results = pull_many(names, jobs=args.jobs, force=args.force, require_hashes=args.require_hashes,
                        progress=_progress(args))
    records = [{**dataclasses.asdict(r), "folder": r.folder and str(r.folder)} for r in results] + skipped
    _emit(args, records, PULL_COLUMNS)
    return 1 if any(not r.ok for r in results) else 0


def cmd_convert(args: argparse.Namespace) -> int:
    """``ssl-zoo convert NAME --from-file PATH``: convert a checkpoint the user downloaded; print the folder."""
    from .pulling import convert_file

    print(convert_file(args.name, Path(args.from_file)))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """``ssl-zoo verify``: re-hash cached files and model folders; exit 1 on any mismatch or missing file."""
    results = inventory.verify(args.names or None)
    if not results:
        print(f"nothing cached under {cache.home()}: nothing to verify", file=sys.stderr)
    _emit(args, [{**dataclasses.asdict(r), "item": str(r.item)} for r in results], VERIFY_COLUMNS)
    return 0 if all(r.ok for r in results) else 1


def cmd_mirror_export(args: argparse.Namespace) -> int:
    """``ssl-zoo mirror export DIR``: write cached upstream files in the SSL_ZOO_MIRROR layout."""
    written = inventory.export_mirror(Path(args.dir), args.models)
    for path in written:
        print(path)
    _note(args, f"wrote {len(written)} file(s) under {args.dir} (files already up to date are not listed); "
                f"serve it with SSL_ZOO_MIRROR={Path(args.dir).resolve().as_uri()}")
    return 0


def _command(sub: Any, common: argparse.ArgumentParser, name: str, func: Callable, summary: str,
             json_flag: bool = True) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, parents=[common], help=summary, description=summary, epilog=EXIT_CODES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func, parser=parser, json=False)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON with the same fields as the table")
    return parser


def _add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = _command(sub, common, "list", cmd_list, "list the registry entries and what the cache holds")
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="wildcard on the name ('moco*'); plain text matches anywhere in the name")
    p.add_argument("--arch", help="only this architecture (resnet50, resnet18, densenet121)")
    p.add_argument("--method", help="only methods containing this text")
    p.add_argument("--commercial", action="store_true", help="only entries whose licence allows commercial use")
    p = _command(sub, common, "info", cmd_info, "every registry field of an entry and where its files are")
    p.add_argument("name", metavar="NAME")
    p = _command(sub, common, "pull", cmd_pull, "download and convert entries (in parallel)")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every registry entry")
    p.add_argument("--jobs", "-j", type=int, default=4, help="entries worked on at once (default 4)")
    p.add_argument("--force", action="store_true", help="convert again even if the model folder exists")
    p.add_argument("--require-hashes", action="store_true", help="refuse files without a pinned or recorded sha256")
    p = _command(sub, common, "convert", cmd_convert, "convert a checkpoint you downloaded yourself", json_flag=False)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from-file", required=True, metavar="PATH", help="the downloaded upstream file (a TF checkpoint: its .zip, folder or .index)")
    p = _command(sub, common, "verify", cmd_verify, "re-hash cached downloads and model folders")
    p.add_argument("names", nargs="*", metavar="NAME", help="default: every entry with anything cached")
    mirror = sub.add_parser("mirror", help="mirror helpers").add_subparsers(dest="action", required=True)
    p = _command(mirror, common, "export", cmd_mirror_export, "copy cached downloads into a mirror folder "
                 "(<DIR>/<name>/<file>, the layout SSL_ZOO_MIRROR serves)", json_flag=False)
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--models", nargs="+", metavar="NAME", help="default: every entry with a downloaded file")


# Modules under ssl_zoo.commands that add their own subcommands with ``add_commands(sub, common)``;
# they import torch and friends inside their handlers only, so ``ssl-zoo list`` stays light.
COMMAND_MODULES = ("hub", "evaluation", "pretraining")


def _add_plugin_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    import importlib

    for module in COMMAND_MODULES:
        importlib.import_module(f".commands.{module}", __package__).add_commands(sub, common)


def build_parser() -> argparse.ArgumentParser:
    """The ``ssl-zoo`` argument parser."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: an option after the command must not reset one given before it.
    common.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                        help="no progress bars or notes on stderr (also SSL_ZOO_QUIET=1)")
    parser = argparse.ArgumentParser(prog="ssl-zoo", description="Self-supervised and supervised checkpoints, "
                                     "converted to safetensors model folders.", epilog=EXIT_CODES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"ssl-zoo {__version__}")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bars (also SSL_ZOO_QUIET=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_commands(sub, common)
    _add_plugin_commands(sub, common)
    return parser


def _known_error(exc: BaseException) -> tuple[int, str] | None:
    for kind, code, message in KNOWN_ERRORS:
        if isinstance(exc, kind):
            return code, message or _one_line(exc)
    return None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the ``ssl-zoo`` command line.

    Args:
        argv: The arguments after the program name; default ``sys.argv[1:]``.

    Returns:
        The exit code: 0 success, 1 an error or a failed item, 2 a usage error, 130 interrupted,
        141 stdout closed by the reader (``| head``).
    """
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as exc:  # argparse: --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BrokenPipeError:  # `ssl-zoo list | head`: the reader left; say nothing, as `cat` would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except BaseException as exc:
        known = _known_error(exc)
        if known is None:
            raise
        if cache.env_flag(cache.DEBUG_ENV):
            traceback.print_exc()
        print(f"ssl-zoo: error: {known[1]}", file=sys.stderr)
        return known[0]
