"""What the evaluation command modules (``evaluation``, ``analyses``) share: the model, data and preset options,
reading the dataset the options name, the result folder, and printing a record as a summary table or ``--json``.
torch is never imported here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from .common import add_command, format_table, positive_int, progress_enabled

DEFAULT_OUT = "ssl_zoo_runs"
SUMMARY_HEADERS = ("MODEL", "LABELS", "METRIC", "MEAN", "STD", "95% CI", "TRIALS")


def fmt(value: Any) -> str:
    """A metric with four decimals, "-" for None."""
    return "-" if value is None else f"{value:.4f}"


def print_record(args: argparse.Namespace, record: dict, rows: list[list[str]]) -> int:
    """Print ``record`` as JSON (``--json``) or ``rows`` under ``SUMMARY_HEADERS``; exit code 0."""
    if args.json:
        from ..evaluation.results import clean

        print(json.dumps(clean(record), indent=2))
    else:
        print(format_table(SUMMARY_HEADERS, rows))
    return 0


def read_data(args: argparse.Namespace) -> Any:
    """The dataset the command line names (``DATA`` / ``--data``, a card with ``--root``, and the data options)."""
    from ..evaluation.data import read_dataset

    options = {"uncertain": args.uncertain, "image_column": args.image_column, "label_columns": args.label_columns,
               "convention": args.convention, "views": args.views, "size": args.size}
    if args.root is not None:
        options.update(download=args.download or None, progress=progress_enabled(args))
    return read_dataset(args.data, root=args.root, masks=getattr(args, "masks", None), **options)


def common_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword options every protocol function takes: image size, input channels, device, progress."""
    return {"image_size": args.image_size, "in_chans": args.in_chans, "device": args.device,
            "progress": progress_enabled(args)}


def output_folder(args: argparse.Namespace) -> str:
    """``--out``, or ``ssl_zoo_runs/<command>``; checked before any work (a file there is one line, not an errno)."""
    from ..store.atomic import check_output_folder

    return str(check_output_folder(Path(args.out or f"{DEFAULT_OUT}/{args.command}")))


def preset_option(p: argparse.ArgumentParser, protocol: str) -> None:
    """``--preset`` and ``--normalization`` of a protocol command (``protocol``: its paper, for the help)."""
    p.add_argument("--preset", metavar="NAME", help=f"protocol preset (default: the {protocol} paper's; "
                   "`ssl-zoo presets` lists them); other options override single settings")
    p.add_argument("--normalization", choices=("paper", "entry", "imagenet", "none", "histogram", "chestx-ray"),
                   help="normalisation rule (default: the preset's; entry = the model's own mean/std)")


def model_options(p: argparse.ArgumentParser) -> None:
    """Image size, input channels, device, seed and ``--out``."""
    p.add_argument("--image-size", type=positive_int, help="crop size (default: the preset's: 224, saliency 242); small sizes make fast runs")
    p.add_argument("--in-chans", type=positive_int, default=3, help="model input channels (1: grayscale stem; default 3)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and of trial 0 (default 0)")
    p.add_argument("--out", help=f"result folder (default {DEFAULT_OUT}/<command>)")


def data_options(p: argparse.ArgumentParser, positional: bool = True) -> None:
    """``DATA`` (unless not ``positional``) and the options that say how to read it (card, CSV, MedMNIST)."""
    if positional:
        p.add_argument("data", metavar="DATA", help="dataset card name (with --root), class folder, CSV of paths and "
                       "labels (optional split/group columns), or MedMNIST-style .npz")
    p.add_argument("--root", metavar="DIR", help="card: the folder holding the dataset (`ssl-zoo datasets info NAME`)")
    p.add_argument("--convention", help="card: label convention (default: the papers'; see `ssl-zoo datasets info`)")
    p.add_argument("--views", choices=("all", "frontal"), help="card: keep frontal radiographs only (CheXpert, MIMIC)")
    p.add_argument("--size", type=int, choices=(28, 64, 128, 224), help="MedMNIST card: image size (default 28)")
    p.add_argument("--download", action="store_true", help="MedMNIST card: download a missing file (md5-checked)")
    p.add_argument("--image-column", help="CSV: the image path column (default: the first)")
    p.add_argument("--label-columns", nargs="+", metavar="COL", help="CSV: label columns (default: all others)")
    p.add_argument("--uncertain", choices=("zeros", "ones", "lsr-ones", "lsr-zeros"),
                   help="what -1 (uncertain) becomes (CSV default zeros; a card: its convention's; lsr-*: seeded "
                   "uniform soft labels)")


def add_model_command(sub: Any, common: argparse.ArgumentParser, name: str, func: Callable, summary: str,
                      model_nargs: str | None = None) -> argparse.ArgumentParser:
    """A subcommand taking ``MODEL`` (or ``MODEL...`` with ``model_nargs``) and ``model_options``."""
    p = add_command(sub, common, name, func, summary)
    if model_nargs:
        p.add_argument("models", nargs=model_nargs, metavar="MODEL", help="registry names or model folders")
    else:
        p.add_argument("model", metavar="MODEL", help="a registry name or a model folder")
    model_options(p)
    return p
