"""``ssl-zoo pretrain``: self-supervised pre-training on your own unlabelled images.

Parsing and presentation only; the work is in ``ssl_zoo.pretraining``, imported by the handler so that
``ssl-zoo list`` stays light. Under ``torchrun`` every process runs the same command.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import (add_command, emit, non_negative_float, non_negative_int, positive_float, positive_int,
                     progress_enabled)

# Kept here (not imported from ssl_zoo.pretraining) so building the parser imports no torch.
METHODS = ("moco-v2", "simclr", "byol", "swav", "barlow-twins", "dira", "magical", "chaitanya-global",
           "chaitanya-local", "spark")


def _option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it can be (numbers, true/false), else kept as text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def list_presets(args: argparse.Namespace) -> int:
    """``ssl-zoo pretrain --list-presets``: every recipe preset, the methods it covers and its sources."""
    from ..pretraining.recipes import list_presets as presets

    rows = presets()
    emit(args, rows, [("preset", lambda r: r["preset"]), ("methods", lambda r: ", ".join(r["methods"])),
                      ("title", lambda r: r["title"])])
    if not args.json:
        for row in rows:
            print(f"\n{row['preset']} sources:", *(f"  {s}" for s in row["sources"]), sep="\n")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    """``ssl-zoo pretrain``: train, then print the model folder(s) written."""
    if args.list_presets:
        return list_presets(args)
    missing = [f"--{k.replace('_', '-')}" for k in ("method", "data", "out") if getattr(args, k) is None]
    if missing:
        args.parser.error(f"the following arguments are required: {', '.join(missing)}")
    from ..pretraining import pretrain
    from ..pretraining.monitor import MonitorSettings

    watch = MonitorSettings(val_fraction=args.val_fraction, select=args.select, early_stop=args.early_stop,
                            probe_data=args.monitor, probe=args.monitor_probe, probe_every=args.monitor_every,
                            wandb=args.wandb)
    written = pretrain(args.method, args.data, args.out, preset=args.preset, epochs=args.epochs,
                       batch_size=args.batch_size, arch=args.arch, image_size=args.image_size, init=args.init,
                       resume=args.resume, overwrite=args.overwrite, compile=args.compile, device=args.device,
                       workers=args.workers, lr=args.lr, weight_decay=args.weight_decay,
                       warmup_epochs=args.warmup_epochs, clip=args.clip, seed=args.seed,
                       checkpoint_every=args.checkpoint_every, options=dict(args.option),
                       progress=progress_enabled(args), views=args.views, intensity=args.intensity, watch=watch)
    if args.json:
        print(json.dumps({k: str(v) for k, v in written.items()}, indent=2))
    else:
        for path in written.values():
            print(path)
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``pretrain`` to the ``ssl-zoo`` parser."""
    p = add_command(sub, common, "pretrain", cmd_pretrain,
                 "pre-train a backbone with a self-supervised method; writes RUN_DIR/model (and RUN_DIR/unet)")
    p.set_defaults(parser=p)
    p.add_argument("--method", choices=METHODS, help="required unless --list-presets")
    p.add_argument("--data", metavar="DIR",
                   help="images, .npy/.npz arrays, NIfTI volumes or DICOM files (a series of slices is a volume)")
    p.add_argument("--out", metavar="RUN_DIR", help="checkpoint, loss curve and model folders")
    p.add_argument("--preset", metavar="NAME", help="a named recipe (default: the method's paper recipe); "
                   "see --list-presets")
    p.add_argument("--list-presets", action="store_true", help="list the recipe presets with their sources")
    p.add_argument("--epochs", type=positive_int, help="default: the recipe's")
    p.add_argument("--batch-size", type=positive_int, help="global batch over all processes (default: the recipe's; "
                   "the learning rate scales with it where the paper scales it)")
    p.add_argument("--intensity", metavar="RECIPE|NAME", help="how pixels become [0, 1]: auto (default), minmax "
                   "(per slice, e.g. LIDC CT), window:LOW,HIGH (e.g. window:-1000,1000 HU), file-window (DICOM VOI), "
                   "or a registry entry / dataset card whose recipe to use")
    p.add_argument("--views", choices=("auto", "device", "workers"), default="auto",
                   help="draw the augmented views batched on the device (kornia) or per sample in the workers "
                        "(default auto: the device on CUDA)")
    p.add_argument("--val-fraction", type=float, default=0.05,
                   help="share of the volumes/patients/images held out for the per-epoch validation loss "
                        "(default 0.05; 0: none)")
    p.add_argument("--select", choices=("last", "best-validation"),
                   help="the output model: last or the lowest validation loss (default: the method's paper)")
    p.add_argument("--early-stop", type=non_negative_int, metavar="EPOCHS",
                   help="stop after EPOCHS epochs without a lower validation loss (default: the method's paper)")
    p.add_argument("--monitor", metavar="DATA", help="a small labelled set (class folders, CSV, .npz): "
                   "k-NN or linear-probe accuracy during training")
    p.add_argument("--monitor-probe", choices=("knn", "linear"), default="knn")
    p.add_argument("--monitor-every", type=positive_int, default=1, metavar="EPOCHS")
    p.add_argument("--wandb", action="store_true", help="also log to Weights & Biases (needs wandb installed)")
    p.add_argument("--arch", default="resnet50", help="resnet50 (default), resnet18 or densenet121 (not spark)")
    p.add_argument("--image-size", type=positive_int, help="default: the recipe's (224; magical-medmnist 28)")
    p.add_argument("--init", metavar="NAME|FOLDER|RUN_DIR",
                   help="start from a registry entry or model folder (backbone) or an earlier run of the method")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN_DIR's run from its checkpoint; a larger --epochs extends it (the schedule "
                        "is recomputed for the new length, warm-up unchanged)")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    p.add_argument("--workers", type=non_negative_int, help="data loader processes (default 8 on CUDA, 0 on CPU)")
    p.add_argument("--lr", type=positive_float, help="peak learning rate at the recipe's reference batch (default: the recipe's)")
    p.add_argument("--weight-decay", type=non_negative_float, help="default: the recipe's")
    p.add_argument("--warmup-epochs", type=non_negative_float, help="default: the recipe's (10 for LARS methods, SparK 40)")
    p.add_argument("--clip", type=non_negative_float, help="gradient-norm clip (0: off; default: the recipe's, SparK 5, else off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-every", type=positive_int, default=500, metavar="STEPS")
    p.add_argument("--option", "-o", type=_option, action="append", default=[], metavar="KEY=VALUE",
                   help="a method option, e.g. -o tau=0.2 -o queue=16384 (repeatable)")
