"""``ssl-zoo publish`` and ``ssl-zoo bundle create|install``: the Hub and air-gapped sites.

Parsing and presentation only; the work is in ``ssl_zoo.sharing.publishing`` and ``ssl_zoo.sharing.bundles``, imported by the
handlers so that ``ssl-zoo list`` stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from .common import add_command, format_table, note, progress_enabled

PUBLISH_COLUMNS = ("REPO", "FILE", "SIZE", "SHA256")


def cmd_publish(args: argparse.Namespace) -> int:
    """``ssl-zoo publish``: upload model folders (or, with --dry-run, print exactly what would be uploaded)."""
    from ..sharing.publishing import publish

    plans = publish(args.names, namespace=args.namespace, private=args.private, create_pr=args.create_pr,
                    revision=args.revision, dry_run=args.dry_run, progress=progress_enabled(args))
    records = [{**dataclasses.asdict(p), "folder": str(p.folder)} for p in plans]
    if args.json:
        print(json.dumps(records, indent=2, default=str))
        return 0
    for plan in plans:
        _print_plan(plan, args.dry_run)
    return 0


def _print_plan(plan: Any, dry_run: bool) -> None:
    target = f"pull request on {plan.repo_id}" if plan.create_pr else f"{plan.repo_id}@{plan.revision or 'main'}"
    head = "would upload" if dry_run else "uploaded"
    print(f"{head} {plan.folder} to {target}{' (private)' if plan.private else ''}")
    print(f"commit message: {plan.commit_message}")
    print(format_table(PUBLISH_COLUMNS, ((plan.repo_id, f.name, f.size, f.sha256) for f in plan.files)))
    if plan.commit_url:
        print(f"commit: {plan.commit_url}")


def cmd_bundle_create(args: argparse.Namespace) -> int:
    """``ssl-zoo bundle create FILE.tar``: one verifiable archive of model folders."""
    from ..sharing.bundles import create_bundle
    from ..modelfolder.files import WEIGHTS

    manifest = create_bundle(Path(args.file), args.models, progress=progress_enabled(args))
    for name, files in manifest["models"].items():
        print(f"{name}\t{files[WEIGHTS]['sha256']}")
    note(args, f"wrote {len(manifest['models'])} model folder(s) to {args.file}; on the offline machine run "
                f"`ssl-zoo bundle install {Path(args.file).name}`")
    return 0


def cmd_bundle_install(args: argparse.Namespace) -> int:
    """``ssl-zoo bundle install FILE.tar``: verify every hash, then install the folders into the cache."""
    from ..sharing.bundles import install_bundle
    for folder in install_bundle(Path(args.file), progress=progress_enabled(args)):
        print(folder)
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``publish`` and ``bundle create|install`` to the ``ssl-zoo`` parser."""
    p = add_command(sub, common, "publish", cmd_publish, "upload model folders to the Hugging Face Hub "
                 "(repo <namespace>/<arch>.<name>; token from HF_TOKEN or `hf auth login`)")
    p.add_argument("names", nargs="+", metavar="NAME_OR_FOLDER",
                   help="registry names (converted first if needed) or model folders, e.g. your fine-tuned ones")
    p.add_argument("--namespace", required=True, metavar="ORG", help="your Hub user or organisation")
    p.add_argument("--private", action="store_true", help="create new repositories as private")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    p.add_argument("--revision", metavar="BRANCH", help="commit to this branch (default: the default branch)")
    p.add_argument("--dry-run", action="store_true", help="verify and print what would be uploaded; send nothing")
    bundle = sub.add_parser("bundle", help="air-gap bundles of model folders").add_subparsers(
        dest="action", required=True)
    p = add_command(bundle, common, "create", cmd_bundle_create, "write one tar of cached model folders with a "
                 "manifest of their sha256s", json_flag=False)
    p.add_argument("file", metavar="FILE.tar")
    p.add_argument("--models", nargs="+", metavar="NAME", help="default: every complete model folder in the cache")
    p = add_command(bundle, common, "install", cmd_bundle_install, "verify every sha256 of a bundle, then install "
                 "its model folders into the cache (nothing is installed if any check fails)", json_flag=False)
    p.add_argument("file", metavar="FILE.tar")
