"""`ssl-zoo datasets`: the dataset cards (list, info with the expected layout as a tree, MedMNIST download)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .common import add_command, emit, progress_enabled

LIST_COLUMNS = ("NAME", "TASK", "CLASSES", "METRIC", "GROUPS", "ACCESS", "CONVENTIONS")


def _access(card: Any) -> str:
    if card.files:
        return "download"
    return "registration" if card.registration else "open (manual)"


def cmd_datasets(args: argparse.Namespace) -> int:
    """``ssl-zoo datasets [info NAME | download NAME --root DIR]``."""
    action = getattr(args, "action", None) or "list"
    return {"list": _list, "info": _info, "download": _download}[action](args)


def _list(args: argparse.Namespace) -> int:
    from ..datasets import all_cards
    records = [{"name": c.name, "task": c.task, "classes": len(c.classes), "metric": c.metric,
                "groups": c.group_key, "access": _access(c), "conventions": ", ".join(x.name for x in c.conventions)}
               for c in all_cards().values()]
    emit(args, records, [(h, lambda r, k=h.lower(): r[k]) for h in LIST_COLUMNS])
    return 0


def _info(args: argparse.Namespace) -> int:
    import json

    from ..datasets import get_card, layout_tree

    card = get_card(args.name)
    if args.json:
        print(json.dumps({**dataclasses.asdict(card), "layout_tree": layout_tree(card)}, indent=2, default=str))
        return 0
    fields = [("title", card.title), ("task", card.task), ("modality", card.modality),
              ("classes", "; ".join(f"{i} {c}" for i, c in enumerate(card.classes))), ("metric", card.metric),
              ("groups", card.group_key),
              ("split", card.split_rule), ("release", card.release), ("licence", card.licence),
              ("access", "registration required: ssl_zoo never downloads it" if card.registration else _access(card)),
              ("url", card.url), ("how to get", card.how_to_get), ("intensity", _intensity(card)),
              ("files", ", ".join(f"{name} (md5 {md5})" for name, md5 in card.files.items())),
              ("notes", card.notes), ("card version", str(card.version))]
    print(f"{card.name}\n" + "\n".join(f"  {k + ':':14}{v}" for k, v in fields if v))
    print("  conventions (first = default):")
    print("\n".join(f"    {c.name}: {c.description}" for c in card.conventions))
    print("  expected layout (--root DIR):")
    print("\n".join("    " + line for line in layout_tree(card).splitlines()))
    return 0


def _intensity(card: Any) -> str:
    parts = [card.intensity.recipe]
    if card.intensity.slice:
        parts.append(f"{card.intensity.slice} slice")
    if card.intensity.upsample:
        parts.append(f"upsample to {card.intensity.upsample} (NEAREST)")
    return ", ".join(parts) + (f"; {card.intensity.notes}" if card.intensity.notes else "")


def _download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..datasets import get_card
    from ..datasets.readers.medmnist import download
    from ..errors import ManualDownloadRequired

    card = get_card(args.name)
    if not card.files:
        raise ManualDownloadRequired(f"{card.name} is not downloadable by ssl_zoo ({card.licence}); URL: {card.url}; "
                                     f"{card.how_to_get}")
    print(download(card, Path(args.root), args.size, progress=progress_enabled(args)))
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``ssl-zoo datasets`` to the `ssl-zoo` parser."""
    p = add_command(sub, common, "datasets", cmd_datasets, "the benchmark dataset cards: list, info NAME, download")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    info = actions.add_parser("info", parents=[common], help="one card with its expected layout as a tree")
    info.add_argument("name", metavar="NAME")
    info.add_argument("--json", action="store_true", help="print the card as JSON")
    download = actions.add_parser("download", parents=[common], help="fetch a MedMNIST file (md5-checked)")
    download.add_argument("name", metavar="NAME")
    download.add_argument("--root", required=True, metavar="DIR", help="where the .npz goes")
    download.add_argument("--size", type=int, default=28, choices=(28, 64, 128, 224), help="default 28")
