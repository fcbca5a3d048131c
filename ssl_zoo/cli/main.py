"""The ``ssl-zoo`` command: parsing and presentation only; every command calls a library function.

Results go to stdout, progress bars and errors to stderr. A known error prints one line
``ssl-zoo: error: <message>``; the traceback only when ``SSL_ZOO_DEBUG=1``. ``ssl-zoo list`` imports no torch.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from .. import __version__
from ..errors import SslZooError, one_line
from ..extras import missing_extra
from ..store import cache
from . import analyses, catalog, datasets, evaluation, hashes, hub, presets, pretraining
from .common import EXIT_CODES

INTERRUPTED = "interrupted; nothing half-written was kept, run the command again to resume"
REPORT_TO = "the ssl_zoo issue tracker, with the command and the traceback"

# First match wins: (exception type, exit code, fixed message or None for the exception's own one-liner).
KNOWN_ERRORS: tuple[tuple[type[BaseException], int, str | None], ...] = (
    (KeyboardInterrupt, 130, INTERRUPTED),
    (SslZooError, 1, None),
    (FileNotFoundError, 1, None),
    (PermissionError, 1, None),
)


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
    # each imports torch in its handlers only; the order is the help's
    for module in (catalog, hashes, hub, datasets, presets, evaluation, analyses, pretraining):
        module.add_commands(sub, common)
    return parser


def _known_error(exc: BaseException) -> tuple[int, str] | None:
    if isinstance(exc, ModuleNotFoundError) and not isinstance(exc, SslZooError):
        exc = missing_extra(exc) or exc  # an optional dependency imported without extra_imports()
    for kind, code, message in KNOWN_ERRORS:
        if isinstance(exc, kind):
            return code, message or one_line(exc)
    return None


def _unexpected(exc: BaseException, argv: list[str] | None) -> str:
    """The last resort for a bug: what failed, how to see more, where to report; one line."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    command = " ".join(["ssl-zoo", *words[:1]])  # the subcommand: paths and values stay private
    return (f"`{command}` failed unexpectedly ({type(exc).__name__}: {one_line(exc)[:200]}); "
            f"{cache.DEBUG_ENV}=1 shows the traceback; please report it to {REPORT_TO}")


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
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        code, message = _known_error(exc) or (1, _unexpected(exc, argv))
        if cache.env_flag(cache.DEBUG_ENV):
            traceback.print_exc()
        print(f"ssl-zoo: error: {message}", file=sys.stderr)
        return code
