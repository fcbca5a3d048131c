"""What both examples share: where the weights come from when there is no internet, and one line when they can't run.

``--mirror`` takes a folder or server in the ``ssl-zoo mirror export`` layout (or a bundle's install), and
``--from-file`` converts a checkpoint you downloaded yourself; either works offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """``--mirror`` and ``--from-file``: the ways to get weights without internet."""
    parser.add_argument("--mirror", metavar="FOLDER_OR_URL",
                        help="a mirror (`ssl-zoo mirror export` layout) to download from, e.g. on an air-gapped site")
    parser.add_argument("--from-file", metavar="PATH",
                        help="the upstream checkpoint of the (first) model, downloaded by you; converted first")


def prepare_models(args: argparse.Namespace, names: list[str]) -> list[str]:
    """Apply ``--mirror`` and convert ``--from-file`` for the first model; return the references to load."""
    import ssl_zoo

    if args.mirror:
        os.environ["SSL_ZOO_MIRROR"] = args.mirror
    if args.from_file:
        names = [str(ssl_zoo.convert_file(names[0], Path(args.from_file))), *names[1:]]
    return names


def run(main: Callable[[list[str]], object], argv: list[str] | None = None) -> int:
    """Run ``main``; an ssl_zoo error (no network, missing file or extra) is one line saying what is needed."""
    from ssl_zoo.errors import SslZooError

    try:
        main(sys.argv[1:] if argv is None else argv)
    except SslZooError as exc:
        name = Path(sys.argv[0]).name
        print(f"{name}: cannot run: {exc} (offline? pass --mirror FOLDER or --from-file PATH)", file=sys.stderr)
        return 1
    return 0
