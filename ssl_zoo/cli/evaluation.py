"""`ssl-zoo` subcommands of the evaluation protocols: probe, finetune, fewshot, segment. Each parses, calls the
library function in ``ssl_zoo.evaluation`` and prints a summary (or ``--json``); result files go to ``--out``. A
protocol command runs its ``--preset`` (default: its paper's); an option given on the command line overrides that one
setting (options default to None, "not given"), and the results record says which. torch is imported inside the
handlers only. The analyses (compare, saliency, invariance, reconstruct) are in ``analyses``, ``ssl-zoo presets`` in
``presets``, the options they share in ``evaluation_options``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import fraction, positive_float, positive_int
from .evaluation_options import (add_model_command, common_options, data_options, fmt, output_folder, preset_option,
                                 print_record, read_data)


def _summary_rows(record: dict) -> list[list[str]]:
    fraction = f"{100 * record.get('label_fraction', 1.0):g}%"
    return [[record["model"], fraction, metric, fmt(s["mean"]), fmt(s["std"]), fmt(s["ci95"]), str(s["n"])]
            for metric, s in record["summary"].items()]


# CLI option (argparse dest) -> settings field, per protocol command; None values are "not given"
OVERRIDES = {
    "probe": {"C": "C", "batch_size": "batch_size", "normalization": "normalization", "metric": "metric",
              "max_iter": "max_iter", "features": "features"},
    "finetune": {"steps": "steps", "epochs": "epochs", "patience": "patience", "lr": "lr", "wd": "weight_decay",
                 "batch_size": "batch_size", "search": "search", "grid_size": "grid_size",
                 "early_stopping": "early_stopping", "normalization": "normalization", "select_on": "select_on"},
    "fewshot": {"n_way": "n_way", "k_shot": "k_shot", "n_query": "n_query", "episodes": "episodes",
                "batch_size": "batch_size", "normalization": "normalization"},
    "segment": {"epochs": "epochs", "patience": "patience", "lr": "lr", "batch_size": "batch_size",
                "keep_decoder": "keep_decoder", "normalization": "normalization", "classes": "classes"},
}


PROTOCOL_OF = {"probe": "linear", "finetune": "finetune", "fewshot": "fewshot", "segment": "segment"}


def _protocol(args: argparse.Namespace) -> dict[str, Any]:
    """``preset`` plus the setting overrides given on the command line, and the common options; a bad preset name
    or setting fails here, before any data is read."""
    from ..evaluation.presets import resolve

    given = {field: getattr(args, dest) for dest, field in OVERRIDES[args.command].items()}
    resolve(PROTOCOL_OF[args.command], args.preset, image_size=args.image_size, **given)
    return {"preset": args.preset, **common_options(args), **given}


def _run_trials(args: argparse.Namespace, protocol, **extra) -> int:
    """Run a protocol that subsamples labels over trials (probe, fine-tune, segment) and print its summary."""
    record = protocol(args.model, read_data(args), out_dir=output_folder(args), label_fraction=args.label_fraction,
                      trials=args.trials, seed=args.seed, **extra, **_protocol(args))
    return print_record(args, record, _summary_rows(record))


def cmd_probe(args: argparse.Namespace) -> int:
    """``ssl-zoo probe MODEL DATA``."""
    from ..evaluation.probe import linear_probe

    return _run_trials(args, linear_probe)


def cmd_finetune(args: argparse.Namespace) -> int:
    """``ssl-zoo finetune MODEL DATA``."""
    from ..evaluation.finetune import finetune

    return _run_trials(args, finetune, compile=args.compile)


def cmd_segment(args: argparse.Namespace) -> int:
    """``ssl-zoo segment MODEL IMAGES --masks MASKS``."""
    from ..evaluation.segment import segment

    if args.root is None and args.masks is None:
        args.parser.error("give --masks DIR with a folder of images, or a card name with --root DIR")
    return _run_trials(args, segment)


def cmd_fewshot(args: argparse.Namespace) -> int:
    """``ssl-zoo fewshot MODEL DATA``."""
    from ..evaluation.fewshot import fewshot

    options = _protocol(args)
    record = fewshot(args.model, read_data(args), out_dir=output_folder(args), seed=args.seed, **options)
    return print_record(args, record, _summary_rows({**record, "summary": {"accuracy": record["summary"]}}))


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label-fraction", type=fraction, default=1.0, help="share of the training labels (default 1)")
    p.add_argument("--trials", type=positive_int, default=1, help="independent runs, seed + t (default 1)")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs (default: the preset's)")
    p.add_argument("--patience", type=positive_int, help="early stopping patience in checks (default: the preset's)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=positive_int, help="images per step (default: the preset's)")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's subcommands to the `ssl-zoo` parser."""
    p = add_model_command(sub, common, "probe", cmd_probe,
                          "linear probe on frozen features (C chosen on a validation split)")
    data_options(p)
    preset_option(p, "linear probe (ssl-transfer)")
    p.add_argument("--label-fraction", type=fraction, default=1.0, help="share of the training labels (default 1)")
    p.add_argument("--trials", type=positive_int, default=1, help="runs with different label subsets (default 1)")
    p.add_argument("--C", type=positive_float, help="skip the C search and use this value")
    p.add_argument("--metric", choices=("accuracy", "mean_per_class_accuracy", "auc", "dataset"),
                   help="C selection metric (default: the dataset's, else accuracy)")
    p.add_argument("--features", choices=("raw", "standardized"), help="default raw, as upstream")
    p.add_argument("--max-iter", type=positive_int, help="lbfgs iterations per fit (default 100, as upstream)")
    p.add_argument("--batch-size", type=positive_int, help="images per forward pass (default 64)")
    p = add_model_command(sub, common, "finetune", cmd_finetune,
                          "fine-tune every layer with a new head (early stopping)")
    data_options(p)
    preset_option(p, "fine-tune (ssl-transfer)")
    _training_options(p)
    p.add_argument("--steps", type=int, help="step budget (0: train by --epochs; default: the preset's)")
    p.add_argument("--wd", type=float, help="weight decay (default: the preset's)")
    p.add_argument("--search", action="store_true", default=None, help="search the upstream lr/wd grid first")
    p.add_argument("--grid-size", type=positive_int, help="values per axis of the --search grid (default 2)")
    p.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, help="default: the preset's")
    p.add_argument("--select-on", choices=("accuracy", "mean_per_class_accuracy", "auc", "loss", "dataset"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p = add_model_command(sub, common, "segment", cmd_segment, "train a U-Net with the model as encoder; Dice and IoU")
    p.add_argument("data", metavar="IMAGES", help="folder of images, or a segmentation card name with --root")
    p.add_argument("--masks", metavar="DIR", help="folder of masks named like the images (not with a card)")
    data_options(p, positional=False)
    preset_option(p, "segmentation (benchmark-transfer)")
    _training_options(p)
    p.add_argument("--keep-decoder", action="store_true", default=None,
                   help="keep a U-Net entry's pre-trained decoder (default: encoder-only transfer, as upstream)")
    p.add_argument("--classes", type=positive_int,
                   help="foreground classes (default 1: mask > 0; K > 1: masks hold class ids 0..K)")
    p = add_model_command(sub, common, "fewshot", cmd_fewshot,
                          "prototypical-network n-way k-shot accuracy on frozen features")
    data_options(p)
    preset_option(p, "few-shot (ssl-transfer)")
    fewshot_defaults = {"--n-way": 5, "--k-shot": 5, "--n-query": 15, "--episodes": 600, "--batch-size": 64}
    for flag, default in fewshot_defaults.items():
        p.add_argument(flag, type=positive_int, help=f"default: the preset's ({default} in ssl-transfer)")
