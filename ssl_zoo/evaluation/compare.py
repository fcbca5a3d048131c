"""Comparison runner: models x label fractions x trials on one dataset -> one table, one figure, paired p-values.

The test split is drawn once (``seed``) and every run sees the same train / val / test ``Samples``; trial ``t``
draws its label-fraction subset with ``seed + t``, the same for every model, so runs are paired. Each cell
(model, fraction, trial) is one protocol run written under ``runs/<model>/fraction-<f>/trial-<t>/``: a later call
into the same ``out_dir`` skips the cells already there (resume), and ``shard=(k, n)`` runs only cells
``k-1, k-1+n, ...`` so machines (a Slurm array, several GPUs) share the matrix; once every cell is in
``out_dir``, any call writes ``runs.csv``, ``results.csv``, ``results.md`` (mean ± 95 % t half-width over trials,
paired p-value against the first model) and ``label_efficiency.png`` (+ PDF, SVG). The p-values pair the
per-image test scores each run records (``test_scores``, in test-split order; the probe and the fine-tune write them
as ``test_scores-trial-0.npy`` beside the run's record, see ``report``) against the targets of the shared test split.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DatasetError, SettingError, StatisticWarning, UnknownPresetError
from ..store.atomic import write_text_atomic
from .data import Samples
from .plots import draw_or_warn, label_efficiency_plot, model_label
from .report import read_record
from .results import write_csv
from .significance import TESTS, delong, paired_bootstrap
from .splits import check_run, make_splits
from .stats import summarize

# protocol -> (module, function, its record's file name)
PROTOCOLS = {"probe": ("ssl_zoo.evaluation.probe", "linear_probe", "probe.json"),
             "finetune": ("ssl_zoo.evaluation.finetune", "finetune", "finetune.json")}
METRICS = ("auc", "accuracy")
FINETUNE_ONLY = ("epochs", "patience", "lr", "compile")  # options the probe has no use for


@dataclass(frozen=True)
class Cell:
    """One run of the matrix: a model at a label fraction, trial ``trial`` (label subset seed ``seed + trial``)."""

    model: str
    fraction: float
    trial: int

    def folder(self, out_dir: Path) -> Path:
        """Where this run's record lives."""
        return out_dir / "runs" / safe_name(self.model) / f"fraction-{self.fraction:g}" / f"trial-{self.trial}"


def safe_name(text: str) -> str:
    """A file-name-safe version of a model reference (a folder path becomes its last parts)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).strip("/"))[-60:]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)`` with 1 <= K <= N; None stays None.

    Raises:
        SettingError: Anything else.
    """
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise SettingError(f"--shard must be K/N with 1 <= K <= N (e.g. 2/4 for the second of four machines), "
                           f"got {text!r}")
    return int(match[1]), int(match[2])


def matrix(models: Sequence[str], fractions: Sequence[float], trials: int) -> list[Cell]:
    """Every cell, model-major: the order shards are dealt from."""
    return [Cell(str(m), float(f), t) for m in models for f in fractions for t in range(trials)]


def check_request(protocol: str, metric: str, test: str, fractions: Sequence[float], trials: int) -> None:
    """Refuse an unknown protocol, metric or test, an empty trial count or a fraction outside (0, 1]."""
    if protocol not in PROTOCOLS:
        raise UnknownPresetError(f"unknown protocol {protocol!r} for compare; valid protocols: "
                                 f"{', '.join(PROTOCOLS)}")
    if metric not in METRICS or test not in TESTS:
        raise SettingError(f"metric must be one of {', '.join(METRICS)} and test one of {', '.join(TESTS)}; "
                           f"got {metric!r} and {test!r}")
    if trials < 1 or not fractions or any(not 0 < f <= 1 for f in fractions):
        raise SettingError("compare needs --trials >= 1 and label fractions in (0, 1], e.g. 0.1 1.0")


def check_test_split(parts: dict[str, Samples], metric: str) -> None:
    """Refuse data on which the metric is undefined, as the probe does; warn when only some labels support it."""
    train, test = parts["train"], parts["test"]
    if train.task != "multilabel" and len(np.unique(train.class_ids())) < 2:
        raise DatasetError("the training split has one class only: the comparison cannot learn anything; "
                           "give more images of every class")
    if metric != "auc":
        return
    y = test.class_ids()
    if test.task == "multilabel":
        columns = list(y.T)  # one binary column per label
    elif test.task == "multiclass":
        columns = [y == c for c in range(len(test.classes))]  # one-vs-rest
    else:
        columns = [y]
    usable = [len(np.unique(np.asarray(c))) == 2 for c in columns]
    if not any(usable):
        raise DatasetError(f"no class of the {len(test)}-image test split has both positives and negatives, so "
                           f"AUC is undefined; give more images or use --metric accuracy")
    if not all(usable):
        warnings.warn(f"{usable.count(False)} of {len(usable)} labels have one class only in the test split; the "
                      f"macro AUC leaves them out", StatisticWarning, stacklevel=3)


def run_cell(cell: Cell, protocol: str, parts: dict[str, Samples], out_dir: Path, seed: int,
             options: dict[str, Any]) -> None:
    """Run ``cell`` and write its record under ``out_dir``, unless a finished run is already there (resume)."""
    import importlib

    module, function, filename = PROTOCOLS[protocol]
    if (cell.folder(out_dir) / filename).is_file():
        return  # read once, with the others, when every cell is done
    run = getattr(importlib.import_module(module), function)
    if protocol == "probe":
        options = {k: v for k, v in options.items() if k not in FINETUNE_ONLY}
    run(cell.model, parts, out_dir=cell.folder(out_dir), label_fraction=cell.fraction, trials=1,
        seed=seed + cell.trial, **options)


def compare(models: Sequence[str | Path], data: Samples | dict[str, Samples], out_dir: str | Path, *,
            protocol: str = "finetune", label_fractions: Sequence[float] = (0.1, 1.0), trials: int = 3,
            metric: str = "auc", seed: int = 0, shard: tuple[int, int] | str | None = None,
            test: str = "bootstrap", resamples: int = 2000, dataset: str | None = None, progress: bool = True,
            **options: Any) -> dict[str, Any]:
    """Run ``protocol`` for every model, label fraction and trial (or this shard's share); write the outputs.

    Args:
        models: Registry names or model folders; the first is the baseline of the p-values.
        data: The dataset (``Samples`` or its own splits).
        out_dir: Output folder; finished runs already in it are reused as they are (use a new folder when the
            protocol's settings change).
        protocol: "finetune" or "probe".
        label_fractions: Shares of the training labels.
        trials: Runs per model and fraction.
        metric: "auc" or "accuracy": the table's, the plot's and the test's metric.
        seed: Seed of the splits; trial ``t`` subsamples labels with ``seed + t``.
        shard: ``(k, n)`` or ``"k/n"``: run only this machine's cells.
        test: "bootstrap" (paired bootstrap of the metric) or "delong" (AUC, binary tasks).
        resamples: Bootstrap draws.
        dataset: The dataset's name for the figure title (default: its card's name).
        progress: Progress bars on stderr.
        **options: Passed to the protocol (``preset``, ``device``, settings overrides ...).

    Returns:
        ``{"rows", "files", "cells", "done", "missing", "dataset"}`` (``dataset``: the card, if any); ``rows``
        and ``files`` are empty until every cell is in ``out_dir``.

    Raises:
        UnknownPresetError: An unknown protocol (the valid ones are listed).
        SettingError: A bad metric, test, shard, trial count or fraction.
        DatasetError: Data on which the metric is undefined.

    Example:
        >>> compare(["moco-v2", "supervised-r50"], read_dataset("cxr.csv"), "runs/cmp", protocol="probe")
    """
    check_run(data)  # a path instead of read data; the numbers are checked below
    check_request(protocol, metric, test, label_fractions, trials)
    out_dir, shard = Path(out_dir), parse_shard(shard) if isinstance(shard, str) else shard
    parts, _ = make_splits(data, seed=seed)
    check_test_split(parts, metric)
    cells = matrix([str(m) for m in models], label_fractions, trials)
    mine = cells if shard is None else cells[shard[0] - 1::shard[1]]
    for cell in mine:
        run_cell(cell, protocol, parts, out_dir, seed, {"progress": progress, **options})
    filename = PROTOCOLS[protocol][2]
    missing = [c for c in cells if not (c.folder(out_dir) / filename).is_file()]
    result = {"rows": [], "files": {}, "cells": len(cells), "done": len(cells) - len(missing), "missing": missing,
              "dataset": getattr(data, "card", None)}
    if not missing:
        records = {c: read_record(c.folder(out_dir) / filename) for c in cells}
        rows, runs = summary_rows(records, parts["test"], metric, test, resamples, seed)
        title = f"{dataset or dataset_name(data)}: {protocol} protocol, test {'AUC' if metric == 'auc' else metric}"
        result.update(rows=rows, files=write_outputs(out_dir, runs, rows, metric=metric, title=title, test=test))
    return result


def dataset_name(data: Any) -> str:
    """The dataset's name for titles: its card's name, else "dataset"."""
    card = getattr(data, "card", None) or {}
    return str(card.get("name", "dataset"))


def summary_rows(records: dict[Cell, dict], test_set: Samples, metric: str, test: str, resamples: int,
                 seed: int) -> tuple[list[dict], list[dict]]:
    """One row per (model, fraction) with ``stats.summarize`` and the p-value against the first model."""
    runs = [{"model": c.model, "label_fraction": c.fraction, "trial": c.trial,
             metric: r["trials"][0]["test"][metric]} for c, r in records.items()]
    models = list(dict.fromkeys(c.model for c in records))
    rows = []
    for model in models:
        for fraction in dict.fromkeys(c.fraction for c in records):
            values = [r[metric] for r in runs if r["model"] == model and r["label_fraction"] == fraction]
            rows.append({"model": model, "label_fraction": fraction, **summarize(values),
                         **paired_test(records, model, models[0], fraction, test_set, metric, test, resamples,
                                       seed)})
    return rows, runs


def trial_scores(records: dict[Cell, dict], model: str, fraction: float) -> list[np.ndarray] | None:
    """A model's per-trial test scores at ``fraction`` (None when its protocol did not record them)."""
    chosen = sorted((c.trial, r) for c, r in records.items() if c.model == model and c.fraction == fraction)
    scores = [r["trials"][0].get("test_scores") for _, r in chosen]
    return None if any(s is None for s in scores) else [np.asarray(s, dtype=np.float64) for s in scores]


def paired_test(records: dict[Cell, dict], model: str, baseline: str, fraction: float, test_set: Samples,
                metric: str, test: str, resamples: int, seed: int) -> dict[str, Any]:
    """``{"p_value", "test", "versus"}`` of ``model`` against ``baseline`` (None for the baseline itself)."""
    if model == baseline:
        return {"p_value": None, "test": None, "versus": None}
    a, b = trial_scores(records, model, fraction), trial_scores(records, baseline, fraction)
    if a is None or b is None:
        return {"p_value": None, "test": "n/a: the protocol's records hold no per-image test_scores",
                "versus": baseline}
    targets = test_set.class_ids()
    if any(len(s) != len(targets) for s in a + b):
        raise DatasetError(f"the runs of {model} or {baseline} in the output folder scored another test split "
                           f"({sorted({len(s) for s in a + b})} images, not {len(targets)}): the data or seed "
                           f"changed since; use a new --out folder")
    if test == "delong":
        p = max(delong(targets, x, y)["p_value"] for x, y in zip(a, b))  # the least significant trial
    else:
        p = paired_bootstrap(test_set.task, targets, a, b, metric, resamples=resamples, seed=seed)["p_value"]
    return {"p_value": None if math.isnan(p) else p, "test": test, "versus": baseline}


def write_outputs(out_dir: Path, runs: list[dict], rows: list[dict], *, metric: str, title: str,
                  test: str) -> dict[str, Path]:
    """``runs.csv``, ``results.csv``, ``results.md``, then the label-efficiency figure (PNG, PDF, SVG)."""
    files = {"runs": write_csv(out_dir / "runs.csv", runs), "table": write_csv(out_dir / "results.csv", rows),
             "markdown": out_dir / "results.md"}
    write_text_atomic(files["markdown"], markdown_table(rows, metric, test) + "\n")
    figures = draw_or_warn(lambda: label_efficiency_plot(rows, out_dir / "label_efficiency.png", metric=metric,
                                                         title=title), "label-efficiency figure")
    return {**files, **dict(zip(("plot", "plot_pdf", "plot_svg"), figures))}


def cell_text(row: dict) -> str:
    """``mean ± half-width (n=trials)``, then ``p=...`` against the baseline where there is one."""
    if row["mean"] is None:
        return "n/a"
    interval = "" if row["ci95"] is None else f" ± {row['ci95']:.3f}"
    p = "" if row.get("p_value") is None else f", p={row['p_value']:.3g}"
    return f"{row['mean']:.3f}{interval} (n={row['n']}){p}"


def markdown_table(rows: Sequence[dict], metric: str, test: str = "bootstrap") -> str:
    """Models as rows, label fractions as columns, and a legend saying what ± and p are."""
    fractions = sorted({r["label_fraction"] for r in rows})
    header = "| model | " + " | ".join(f"{metric} @ {100 * f:g}% labels" for f in fractions) + " |"
    lines = [header, "|" + "---|" * (len(fractions) + 1)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for model in models:
        cells = {r["label_fraction"]: cell_text(r) for r in rows if r["model"] == model}
        lines.append(f"| {model_label(model)} | " + " | ".join(cells.get(f, "") for f in fractions) + " |")
    how = "paired bootstrap of the trial-mean metric over the test images" if test == "bootstrap" else \
        "DeLong's test of the AUCs (largest p over trials)"
    missing = next((r["test"] for r in rows if str(r.get("test", "")).startswith("n/a")), None)
    p_text = f"no p-values ({missing[5:]})" if missing else \
        f"p = two-sided {how}, against {model_label(models[0]) if models else '-'}"
    lines += ["", f"± = half-width of the 95 % confidence interval of the mean over trials (Student t, n trials); "
                  f"{p_text}."]
    return "\n".join(lines)
