"""`ssl-zoo` subcommands of the evaluation protocols: probe, finetune, fewshot, segment, compare, saliency,
invariance, reconstruct, and ``presets`` (the protocol presets with their settings and sources). Each parses, calls the library
function in ``ssl_zoo.evaluation`` and prints a summary (or ``--json``); result files go to ``--out``. A protocol
command runs its ``--preset`` (default: its paper's); an option given on the command line overrides that one setting
(options default to None, "not given"), and the results record says which. torch is imported inside the handlers only.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from .common import add_command, format_table, fraction, note, positive_float, positive_int, progress_enabled

DEFAULT_OUT = "ssl_zoo_runs"
SUMMARY_HEADERS = ("MODEL", "LABELS", "METRIC", "MEAN", "STD", "95% CI", "TRIALS")


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _summary_rows(record: dict) -> list[list[str]]:
    fraction = f"{100 * record.get('label_fraction', 1.0):g}%"
    return [[record["model"], fraction, metric, _fmt(s["mean"]), _fmt(s["std"]), _fmt(s["ci95"]), str(s["n"])]
            for metric, s in record["summary"].items()]


def _print_record(args: argparse.Namespace, record: dict, rows: list[list[str]]) -> int:
    if args.json:
        from ..evaluation.results import clean

        print(json.dumps(clean(record), indent=2))
    else:
        print(format_table(SUMMARY_HEADERS, rows))
    return 0


def _read(args: argparse.Namespace) -> Any:
    from ..evaluation.data import read_dataset

    options = {"uncertain": args.uncertain, "image_column": args.image_column, "label_columns": args.label_columns,
               "convention": args.convention, "views": args.views, "size": args.size}
    if args.root is not None:
        options.update(download=args.download or None, progress=progress_enabled(args))
    return read_dataset(args.data, root=args.root, masks=getattr(args, "masks", None), **options)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {"image_size": args.image_size, "in_chans": args.in_chans, "device": args.device,
            "progress": progress_enabled(args)}


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
    return {"preset": args.preset, **_common(args), **given}


def _out(args: argparse.Namespace) -> str:
    return args.out or f"{DEFAULT_OUT}/{args.command}"


def cmd_probe(args: argparse.Namespace) -> int:
    """``ssl-zoo probe MODEL DATA``."""
    from ..evaluation.probe import linear_probe

    options = _protocol(args)
    record = linear_probe(args.model, _read(args), out_dir=_out(args), label_fraction=args.label_fraction,
                          trials=args.trials, seed=args.seed, **options)
    return _print_record(args, record, _summary_rows(record))


def cmd_finetune(args: argparse.Namespace) -> int:
    """``ssl-zoo finetune MODEL DATA``."""
    from ..evaluation.finetune import finetune

    options = _protocol(args)
    record = finetune(args.model, _read(args), out_dir=_out(args), label_fraction=args.label_fraction,
                      trials=args.trials, seed=args.seed, compile=args.compile, **options)
    return _print_record(args, record, _summary_rows(record))


def cmd_segment(args: argparse.Namespace) -> int:
    """``ssl-zoo segment MODEL IMAGES --masks MASKS``."""
    from ..evaluation.segment import segment

    if args.root is None and args.masks is None:
        args.parser.error("give --masks DIR with a folder of images, or a card name with --root DIR")
    options = _protocol(args)
    record = segment(args.model, _read(args), out_dir=_out(args), label_fraction=args.label_fraction,
                     trials=args.trials, seed=args.seed, **options)
    return _print_record(args, record, _summary_rows(record))


def cmd_fewshot(args: argparse.Namespace) -> int:
    """``ssl-zoo fewshot MODEL DATA``."""
    from ..evaluation.fewshot import fewshot

    options = _protocol(args)
    record = fewshot(args.model, _read(args), out_dir=_out(args), seed=args.seed, **options)
    return _print_record(args, record, _summary_rows({**record, "summary": {"accuracy": record["summary"]}}))


def cmd_compare(args: argparse.Namespace) -> int:
    """``ssl-zoo compare MODEL... --data DATA``: the table with p-values and the label-efficiency figure."""
    from pathlib import Path

    from ..evaluation.compare import check_request, compare

    check_request(args.protocol, args.metric, args.test, args.label_fractions, args.trials)  # before reading data
    options = {"epochs": args.epochs, "patience": args.patience, "batch_size": args.batch_size} \
        if args.protocol == "finetune" else {"batch_size": args.batch_size}
    result = compare(args.models, _read(args), _out(args), protocol=args.protocol,
                     label_fractions=args.label_fractions, trials=args.trials, metric=args.metric, seed=args.seed,
                     shard=args.shard, test=args.test, resamples=args.resamples, dataset=Path(args.data).name,
                     preset=args.preset, **_common(args), **{k: v for k, v in options.items() if v is not None})
    if result["missing"]:
        note(args, f"ssl-zoo: note: {result['done']} of {result['cells']} runs are in {_out(args)}; the table is written once all are "
              f"(run the other shards, or rerun without --shard to finish them)")
    rows = [[r["model"], f"{100 * r['label_fraction']:g}%", args.metric, _fmt(r["mean"]), _fmt(r["std"]),
             _fmt(r["ci95"]), str(r["n"]), "-" if r.get("p_value") is None else f"{r['p_value']:.3g}"]
            for r in result["rows"]]
    record = {"rows": result["rows"], "files": {k: str(v) for k, v in result["files"].items()},
              "done": result["done"], "cells": result["cells"]}
    if args.json:
        return _print_record(args, record, rows)

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

    record = saliency(args.model, args.images, _out(args), preset=args.preset, image_size=args.image_size,
                      window=args.window, normalization=args.normalization, in_chans=args.in_chans,
                      device=args.device, batch_size=args.batch_size, progress=_common(args)["progress"])
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

    data = _read(args)
    data = data["test"] if isinstance(data, dict) else data
    covariance = _read(argparse.Namespace(**{**vars(args), "data": args.covariance_data})) \
        if args.covariance_data else None
    options = {"out_dir": _out(args), "covariance_data": covariance, "preset": args.preset,
               "in_chans": args.in_chans, "device": args.device, "batch_size": args.batch_size,
               "progress": _common(args)["progress"], "num_images": args.num_images, "seed": args.seed,
               "normalization": args.normalization}
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

    record = reconstruct(args.model, args.images, _out(args), preset=args.preset, device=args.device,
                         progress=_common(args)["progress"], image_size=args.image_size, max_iter=args.max_iter,
                         lr=args.lr, layer=args.layer, perceptual=args.perceptual and tuple(args.perceptual))
    if args.json:
        print(json.dumps(record, indent=2))
    else:
        nets = list(record["images"][0]["lpips"]) if record["images"] else []
        print(format_table(("IMAGE", *(f"LPIPS {n.upper()}" for n in nets), "FIGURE"),
                           ([e["image"], *(f"{e['lpips'][n]:.4f}" for n in nets), e["figures"][0]]
                            for e in record["images"])))
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """``ssl-zoo presets``: every protocol preset, its protocols' settings and its sources."""
    from ..evaluation.presets import list_presets

    rows = list_presets()
    if args.name:
        rows = [r for r in rows if r["name"] == args.name] or _unknown_preset(args.name)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        default = f" (default for {', '.join(row['defaults_for'])})" if row["defaults_for"] else ""
        print(f"{row['name']}{default}: {row['title']}")
        for protocol, settings in row["protocols"].items():
            print(f"  [{protocol}] " + ", ".join(f"{k}={v}" for k, v in settings.items()))
        print("\n".join([f"  source: {u}" for u in row["sources"]] + [f"  note: {n}" for n in row["notes"]]))
    return 0


def _unknown_preset(name: str) -> list:
    from ..evaluation.presets import read_preset

    read_preset(name)  # raises UnknownPresetError listing the valid names
    return []


def _preset_option(p: argparse.ArgumentParser, protocol: str) -> None:
    p.add_argument("--preset", metavar="NAME", help=f"protocol preset (default: the {protocol} paper's; "
                   "`ssl-zoo presets` lists them); other options override single settings")
    p.add_argument("--normalization", choices=("paper", "entry", "imagenet", "none", "histogram", "chestx-ray"),
                   help="normalisation rule (default: the preset's; entry = the model's own mean/std)")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", type=positive_int, help="crop size (default: the preset's, 224); small sizes make fast runs")
    p.add_argument("--in-chans", type=positive_int, default=3, help="model input channels (1: grayscale stem; default 3)")
    p.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA when present)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and of trial 0 (default 0)")
    p.add_argument("--out", help=f"result folder (default {DEFAULT_OUT}/<command>)")


def _data_options(p: argparse.ArgumentParser, positional: bool = True) -> None:
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


def _training_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--label-fraction", type=fraction, default=1.0, help="share of the training labels (default 1)")
    p.add_argument("--trials", type=positive_int, default=1, help="independent runs, seed + t (default 1)")
    p.add_argument("--epochs", type=positive_int, help="maximum epochs (default: the preset's)")
    p.add_argument("--patience", type=positive_int, help="early stopping patience in checks (default: the preset's)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=positive_int, help="images per step (default: the preset's)")


def _add(sub: Any, common: argparse.ArgumentParser, name: str, func: Callable, summary: str,
         model_nargs: str | None = None) -> argparse.ArgumentParser:
    p = add_command(sub, common, name, func, summary)
    if model_nargs:
        p.add_argument("models", nargs=model_nargs, metavar="MODEL", help="registry names or model folders")
    else:
        p.add_argument("model", metavar="MODEL", help="a registry name or a model folder")
    _model_options(p)
    return p


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's subcommands to the `ssl-zoo` parser."""
    p = add_command(sub, common, "presets", cmd_presets, "protocol presets: settings and upstream sources")
    p.add_argument("name", nargs="?", help="show this preset only")
    p = _add(sub, common, "probe", cmd_probe, "linear probe on frozen features (C chosen on a validation split)")
    _data_options(p)
    _preset_option(p, "linear probe (ssl-transfer)")
    p.add_argument("--label-fraction", type=fraction, default=1.0, help="share of the training labels (default 1)")
    p.add_argument("--trials", type=positive_int, default=1, help="runs with different label subsets (default 1)")
    p.add_argument("--C", type=positive_float, help="skip the C search and use this value")
    p.add_argument("--metric", choices=("accuracy", "mean_per_class_accuracy", "auc", "dataset"),
                   help="C selection metric (default: the dataset's, else accuracy)")
    p.add_argument("--features", choices=("raw", "standardized"), help="default raw, as upstream")
    p.add_argument("--max-iter", type=positive_int, help="lbfgs iterations per fit (default 100, as upstream)")
    p.add_argument("--batch-size", type=positive_int, help="images per forward pass (default 64)")
    p = _add(sub, common, "finetune", cmd_finetune, "fine-tune every layer with a new head (early stopping)")
    _data_options(p)
    _preset_option(p, "fine-tune (ssl-transfer)")
    _training_options(p)
    p.add_argument("--steps", type=int, help="step budget (0: train by --epochs; default: the preset's)")
    p.add_argument("--wd", type=float, help="weight decay (default: the preset's)")
    p.add_argument("--search", action="store_true", default=None, help="search the upstream lr/wd grid first")
    p.add_argument("--grid-size", type=positive_int, help="values per axis of the --search grid (default 2)")
    p.add_argument("--early-stopping", action=argparse.BooleanOptionalAction, help="default: the preset's")
    p.add_argument("--select-on", choices=("accuracy", "mean_per_class_accuracy", "auc", "loss", "dataset"))
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p = _add(sub, common, "segment", cmd_segment, "train a U-Net with the model as encoder; Dice and IoU")
    p.add_argument("data", metavar="IMAGES", help="folder of images, or a segmentation card name with --root")
    p.add_argument("--masks", metavar="DIR", help="folder of masks named like the images (not with a card)")
    _data_options(p, positional=False)
    _preset_option(p, "segmentation (benchmark-transfer)")
    _training_options(p)
    p.add_argument("--keep-decoder", action="store_true", default=None,
                   help="keep a U-Net entry's pre-trained decoder (default: encoder-only transfer, as upstream)")
    p.add_argument("--classes", type=positive_int,
                   help="foreground classes (default 1: mask > 0; K > 1: masks hold class ids 0..K)")
    p = _add(sub, common, "fewshot", cmd_fewshot, "prototypical-network n-way k-shot accuracy on frozen features")
    _data_options(p)
    _preset_option(p, "few-shot (ssl-transfer)")
    for flag in ("--n-way", "--k-shot", "--n-query", "--episodes", "--batch-size"):
        p.add_argument(flag, type=positive_int, help="default: the preset's (5, 5, 15, 600, 64)")
    p = _add(sub, common, "compare", cmd_compare, "many models x label fractions x trials: table and plot",
             model_nargs="+")
    p.add_argument("--data", required=True, metavar="DATA", help="class folder, CSV or .npz")
    _data_options(p, positional=False)
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
    p = _add(sub, common, "saliency", cmd_saliency, "occlusion saliency maps and attentive diffusion (ssl-transfer)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, DICOM, NIfTI)")
    _preset_option(p, "saliency (ssl-transfer)")
    p.add_argument("--window", type=positive_int, help="occluding square, slid with stride 1 (default 10)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="occluded copies per forward pass (default 64)")
    p = _add(sub, common, "invariance", cmd_invariance, "feature invariance to 18 transform families or across views")
    _data_options(p)
    _preset_option(p, "invariance (ssl-transfer)")
    p.add_argument("--transforms", nargs="+", metavar="FAMILY", help="families to score (default all 18)")
    p.add_argument("--k", type=positive_int, help="copies per family (default: upstream's 256 / 2 / 7)")
    p.add_argument("--num-images", type=positive_int, help="images scored (default 100)")
    p.add_argument("--covariance-data", metavar="DATA", help="a separate set for the feature mean and covariance")
    p.add_argument("--multiview", action="store_true", help="pairs of views of one patient/study (CSV 'group' column)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default 64)")
    p = _add(sub, common, "reconstruct", cmd_reconstruct, "deep-image-prior reconstruction from features; LPIPS")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, DICOM, NIfTI)")
    p.add_argument("--preset", metavar="NAME", help="preset (default ssl-transfer)")
    p.add_argument("--max-iter", type=positive_int, help="Adam steps - 1 (default 3000)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3)")
    p.add_argument("--layer", help="feature map to match (default layer4)")
    p.add_argument("--perceptual", nargs="+", choices=("alex", "vgg", "squeeze"),
                   help="LPIPS networks (default all three; each is pulled once, hash-checked)")
