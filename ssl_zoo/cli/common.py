"""What every ``ssl-zoo`` command shares: tables, progress switches, notes and the subcommand builder.

Command modules import these public names only, never each other's.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Iterable, Sequence

from ..progress import quiet

EXIT_CODES = """\
exit codes: 0 success; 1 an error, or an entry that pull or verify found failed; 2 a usage error;
130 interrupted; 141 stdout closed early (`| head`).
`pull --all` reports user-supplied entries that have no file as "skipped (user-supplied)" without failing;
named explicitly, they fail with the instruction to get the file.
environment: SSL_ZOO_HOME (cache), SSL_ZOO_MIRROR (http(s):// or file:// base), SSL_ZOO_OFFLINE=1,
SSL_ZOO_QUIET=1 (no progress bars), SSL_ZOO_DEBUG=1 (tracebacks),
SSL_ZOO_SOURCE=auto|hub|upstream (where converted weights of a registry name come from)."""

Column = tuple[str, Callable[[dict[str, Any]], object]]


def field(key: str) -> Callable[[dict[str, Any]], object]:
    return lambda record: record[key]


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Plain-text table: left-aligned columns two spaces apart, a dashed rule under the header."""
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def emit(args: argparse.Namespace, records: list[dict[str, Any]], columns: list[Column]) -> None:
    if args.json:
        print(json.dumps(records, indent=2, default=str))
    elif records:
        print(format_table([h for h, _ in columns], ([get(r) for _, get in columns] for r in records)))


def progress_enabled(args: argparse.Namespace) -> bool:
    """Whether the user wants progress and notes: no ``--quiet`` and no ``SSL_ZOO_QUIET``."""
    return not (getattr(args, "quiet", False) or quiet())


def note(args: argparse.Namespace, message: str) -> None:
    if progress_enabled(args):
        print(message, file=sys.stderr)


def add_command(sub: Any, common: argparse.ArgumentParser, name: str, func: Callable, summary: str,
             json_flag: bool = True) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, parents=[common], help=summary, description=summary, epilog=EXIT_CODES,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func, parser=parser, json=False)
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON with the same fields as the table")
    return parser
