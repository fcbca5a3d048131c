"""What every ``ssl-zoo`` command shares: tables, progress switches, notes and the subcommand builder.

Command modules import these public names only, never each other's.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Iterable, Sequence

from ..store import cache

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
    return not (getattr(args, "quiet", False) or cache.env_flag(cache.QUIET_ENV))


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


def plural(count: int, one: str, many: str) -> str:
    """``"1 entry"`` / ``"3 entries"``."""
    return f"{count} {one if count == 1 else many}"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, checked before any work starts."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0 (a learning rate, C)."""
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a share in (0, 1], such as a label fraction."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1] (0.1 is 10 %), got {text}")
    return value


def _number(text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
