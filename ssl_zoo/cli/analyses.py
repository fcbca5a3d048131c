"""`ssl-zoo` subcommands of the analyses: compare (models x label fractions x trials with paired p-values),
saliency, invariance and reconstruct. Each parses, calls the library function in ``ssl_zoo.evaluation`` and prints a
table (or ``--json``); result files go to ``--out``. torch is imported inside the handlers only.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from .common import format_table, fraction, note, positive_int
from .evaluation_options import (SUMMARY_HEADERS, add_model_command, common_options, data_options, fmt, output_folder,
                                 preset_option, print_record, read_data)


def cmd_compare(args: argparse.Namespace) -> int:
    """``ssl-zoo compare MODEL... --data DATA``: the table with p-values and the label-efficiency figure."""
    from pathlib import Path

    from ..evaluation.compare import check_request, compare

    check_request(args.protocol, args.metric, args.test, args.label_fractions, args.trials)  # before reading data
    options = {"epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size} \
        if args.protocol == "finetune" else {"batch_size": args.batch_size}
    result = compare(args.models, read_data(args), output_folder(args), protocol=args.protocol,
                     label_fractions=args.label_fractions, trials=args.trials, metric=args.metric, seed=args.seed,
                     shard=args.shard, test=args.test, resamples=args.resamples, dataset=Path(args.data).name,
                     preset=args.preset, **common_options(args), **{k: v for k, v in options.items() if v is not None})
    if result["missing"]:
        note(args, f"ssl-zoo: note: {result['done']} of {result['cells']} runs are in {output_folder(args)}; the "
              f"table is written once all are (run the other shards, or rerun without --shard to finish them)")
    rows = [[r["model"], f"{100 * r['label_fraction']:g}%", args.metric, fmt(r["mean"]), fmt(r["std"]),
             fmt(r["ci95"]), str(r["n"]), "-" if r.get("p_value") is None else f"{r['p_value']:.3g}"]
            for r in result["rows"]]
    record = {"rows": result["rows"], "files": {k: str(v) for k, v in result["files"].items()},
              "done": result["done"], "cells": result["cells"]}
    if args.json:
        return print_record(args, record, rows)

    print(format_table((*SUMMARY_HEADERS, "P VS FIRST"), rows))
    return 0


def _warned(run: Callable[[], dict]) -> dict:
    """``run()``, its ``StatisticWarning``s printed as one ``ssl-zoo: warning:`` line each (also in the record)."""
    import sys
    import warnings

    from ..errors import StatisticWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", StatisticWarning)
        record = run()
    for warning in caught:
        print(f"ssl-zoo: warning: {warning.message}", file=sys.stderr)
    return record


def cmd_saliency(args: argparse.Namespace) -> int:
    """``ssl-zoo saliency MODEL IMAGE...``: overlays (PNG, PDF, SVG), maps (.npy) and attentive diffusion."""
    from ..evaluation.saliency import saliency

    record = saliency(args.model, args.images, output_folder(args), preset=args.preset, image_size=args.image_size,
                      window=args.window, normalization=args.normalization, in_chans=args.in_chans,
                      device=args.device, batch_size=args.batch_size, progress=common_options(args)["progress"])
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_table(("IMAGE", "ATTENTIVE DIFFUSION %", "FIGURE"),
                           ([e["image"], f"{e['attentive_diffusion']:.1f}", e["figures"][0]]
                            for e in record["images"])))
    return 0


def cmd_invariance(args: argparse.Namespace) -> int:
    """``ssl-zoo invariance MODEL DATA``: Mahalanobis distance and whitened cosine per transform (or across views)."""
    from ..evaluation.invariance import invariance, multiview_invariance

    data = read_data(args)  # every split: the analyses draw from the whole dataset, as upstream (dataset_pool)
    covariance = read_data(argparse.Namespace(**{**vars(args), "data": args.covariance_data})) \
        if args.covariance_data else None
    options = {"out_dir": output_folder(args), "covariance_data": covariance, "preset": args.preset,
               "in_chans": args.in_chans, "device": args.device, "batch_size": args.batch_size,
               "progress": common_options(args)["progress"], "num_images": args.num_images, "seed": args.seed,
               "normalization": args.normalization, **({"splits": tuple(args.splits)} if args.splits else {})}
    if args.multiview:
        record = _warned(lambda: multiview_invariance(args.model, data, image_size=args.image_size, **options))
        scores = {"multiview": record["multiview"]}
    else:
        sizes = {} if args.image_size is None else {"crop_size": args.image_size,
                                                    "resize": round(args.image_size * 256 / 224)}  # upstream's ratio
        record = _warned(lambda: invariance(args.model, data, transforms=args.transforms and tuple(args.transforms),
                                            k=args.k, **sizes, **options))
        scores = record["transforms"]
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        print(format_table(("TRANSFORM", "COSINE SIMILARITY", "MAHALANOBIS"),
                           ([n, f"{s['cosine_similarity']:.4f}", f"{s['mahalanobis']:.2f}"] for n, s in scores.items())))
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    """``ssl-zoo reconstruct MODEL IMAGE...``: deep-image-prior reconstructions and their LPIPS distances."""
    from ..evaluation.reconstruction import reconstruct

    record = reconstruct(args.model, args.images, output_folder(args), preset=args.preset, device=args.device,
                         progress=common_options(args)["progress"], image_size=args.image_size, max_iter=args.max_iter,
                         lr=args.lr, layer=args.layer, perceptual=args.perceptual and tuple(args.perceptual))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        nets = list(record["images"][0]["lpips"]) if record["images"] else []
        print(format_table(("IMAGE", *(f"LPIPS {n.upper()}" for n in nets), "FIGURE"),
                           ([e["image"], *(f"{e['lpips'][n]:.4f}" for n in nets), e["figures"][0]]
                            for e in record["images"])))
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's subcommands to the `ssl-zoo` parser."""
    p = add_model_command(sub, common, "compare", cmd_compare,
                          "many models x label fractions x trials: table and plot",
             model_nargs="+")
    p.add_argument("--data", required=True, metavar="DATA", help="class folder, CSV or .npz")
    data_options(p, positional=False)
    p.add_argument("--protocol", default="finetune", help="finetune (default) or probe")
    p.add_argument("--preset", metavar="NAME", help="the protocol's preset (default: its paper's)")
    p.add_argument("--label-fractions", type=fraction, nargs="+", default=[0.1, 1.0], help="default 0.1 1.0")
    p.add_argument("--trials", type=positive_int, default=3, help="runs per model and fraction (default 3)")
    p.add_argument("--metric", choices=("auc", "accuracy"), default="auc", help="default auc")
    p.add_argument("--test", choices=("bootstrap", "delong"), default="bootstrap",
                   help="paired test against the first model: bootstrap of the metric (default) or DeLong (AUC)")
    p.add_argument("--resamples", type=positive_int, default=2000, help="bootstrap draws (default 2000)")
    p.add_argument("--shard", metavar="K/N", help="run only the K-th of N shares of the model x fraction x trial "
                   "runs (a Slurm array: --shard $((SLURM_ARRAY_TASK_ID+1))/$SLURM_ARRAY_TASK_COUNT)")
    p.add_argument("--epochs", type=positive_int, help="finetune: maximum epochs (default: the preset's)")
    p.add_argument("--patience", type=positive_int, help="finetune: early stopping patience (default: the preset's)")
    p.add_argument("--batch-size", type=positive_int, help="default: the preset's")
    p = add_model_command(sub, common, "saliency", cmd_saliency,
                          "occlusion saliency maps and attentive diffusion (ssl-transfer)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, DICOM, NIfTI)")
    preset_option(p, "saliency (ssl-transfer)")
    p.add_argument("--window", type=positive_int, help="occluding square, slid with stride 1 (default 10)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="occluded copies per forward pass (default 64)")
    p = add_model_command(sub, common, "invariance", cmd_invariance,
                          "feature invariance to 18 transform families or across views")
    data_options(p)
    preset_option(p, "invariance (ssl-transfer)")
    p.add_argument("--transforms", nargs="+", metavar="FAMILY", help="families to score (default all 18)")
    p.add_argument("--k", type=positive_int, help="copies per family (default: upstream's 256 / 2 / 7)")
    p.add_argument("--num-images", type=positive_int, help="images scored (default 100)")
    p.add_argument("--covariance-data", metavar="DATA", help="a separate set for the feature mean and covariance")
    p.add_argument("--splits", nargs="+", choices=("train", "val", "test"),
                   help="draw only from these official splits (default: every image, as upstream)")
    p.add_argument("--multiview", action="store_true", help="pairs of views of one patient/study (CSV 'group' column)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default 64)")
    p = add_model_command(sub, common, "reconstruct", cmd_reconstruct,
                          "deep-image-prior reconstruction from features; LPIPS")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, DICOM, NIfTI)")
    p.add_argument("--preset", metavar="NAME", help="preset (default ssl-transfer)")
    p.add_argument("--max-iter", type=positive_int, help="Adam steps - 1 (default 3000)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--layer", help="feature map to match (default layer4)")
    p.add_argument("--perceptual", nargs="+", choices=("alex", "vgg", "squeeze"),
                   help="LPIPS networks (default all three; each is pulled once, hash-checked)")
