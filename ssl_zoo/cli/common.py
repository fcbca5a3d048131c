"""What every ``ssl-zoo`` command shares: tables, progress switches, notes and the subcommand builder.

Command modules import these public names only, never each other's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from typing import Any, Callable, Iterable, Sequence

from ..progress import quiet

EXIT_CODES = """\
exit codes: 0 success; 1 an error, or an entry that pull or verify found failed; 2 a usage error;
130 interrupted; 141 stdout closed early (`| head`).
`pull --all` reports user-supplied entries that have no file as "skipped (user-supplied)" without failing;
named explicitly, they fail with the instruction to get the file.
environment: SSL_ZOO_HOME (cache), SSL_ZOO_MIRROR (http(s):// or file:// base, or a folder), SSL_ZOO_OFFLINE=1,
SSL_ZOO_QUIET=1 (no progress bars), SSL_ZOO_DEBUG=1 (tracebacks),
SSL_ZOO_SOURCE=auto|hub|upstream (where converted weights of a registry name come from)."""

Column = tuple[str, Callable[[dict[str, Any]], object]]


def field(key: str) -> Callable[[dict[str, Any]], object]:
    return lambda record: record[key]


def terminal_width() -> int:
    """Columns of the terminal (``COLUMNS`` when set; 96 when stdout is not a terminal)."""
    return shutil.get_terminal_size((96, 24)).columns


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]], *, width: int | None = None) -> str:
    """Plain-text table: left-aligned columns two spaces apart, a dashed rule under the header.

    Args:
        headers: Column titles.
        rows: Cells, turned into text with ``str``.
        width: Fit the table into this many columns by narrowing the widest columns and ending cut cells with
            "…"; None keeps every cell whole (``--wide``).
    """
    cells = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = _fit([max(len(row[i]) for row in cells) for i in range(len(headers))], headers, width)
    lines = ["  ".join(_cut(c, w).ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


SHORT_CELL = 14  # columns of short words (statuses, architectures) are never cut: "user-supplied" stays whole


def _fit(widths: list[int], headers: Sequence[str], width: int | None) -> list[int]:
    """Narrow the widest column, one character at a time, until the table fits ``width``.

    Headers stay whole, and so do the first column (the names a user types next) and columns whose cells are all
    short words.
    """
    widths = list(widths)
    floors = [widths[0]] + [w if w <= SHORT_CELL else max(len(h), 6) for w, h in zip(widths[1:], headers[1:])]
    while width and sum(widths) + 2 * (len(widths) - 1) > width:
        candidates = [i for i, w in enumerate(widths) if w > floors[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def emit(args: argparse.Namespace, records: list[dict[str, Any]], columns: list[Column]) -> None:
    if args.json:
        print(json.dumps(records, indent=2, default=str))
    elif records:
        width = None if getattr(args, "wide", False) else terminal_width()
        print(format_table([h for h, _ in columns], ([get(r) for _, get in columns] for r in records), width=width))


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
        parser.add_argument("--wide", action="store_true", help="print every cell whole instead of fitting the "
                            "table to the terminal (cut cells end with …)")
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


def non_negative_float(text: str) -> float:
    """argparse type: a number >= 0 (a weight decay, warm-up epochs, a clip where 0 is off)."""
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
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
