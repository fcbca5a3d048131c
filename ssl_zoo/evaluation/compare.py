"""Comparison runner: many models x one dataset x label fractions x trials -> one table and one figure.

Writes into ``out_dir``: ``runs.csv`` (one row per trial), ``results.csv`` and ``results.md`` (mean, std and
95 % interval per model and fraction, ``stats.summarize``), ``label_efficiency.png``, ``splits.json`` and one
JSON record per model and fraction under ``runs/``. Every model sees the same splits (``seed``) and the same
label-fraction subsets (seed + trial).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from ..store.atomic import write_text_atomic
from .data import Samples
from .plots import label_efficiency_plot, model_label
from .results import write_csv
from .stats import summarize

# what linear_probe accepts of the options (fine-tune ones such as epochs do not apply to it)
PROBE_OPTIONS = ("trials", "seed", "progress", "image_size", "in_chans", "batch_size", "device", "C")


def run_protocol(protocol: str, model: str, data: Any, fraction: float, out_dir: Path, **options: Any) -> dict:
    from .finetune import finetune
    from .probe import linear_probe

    run = linear_probe if protocol == "probe" else finetune
    if protocol == "probe":
        options = {k: v for k, v in options.items() if k in PROBE_OPTIONS}
    return run(model, data, out_dir=out_dir, label_fraction=fraction, **options)


def safe_name(text: str) -> str:
    """A file-name-safe version of a model reference (a folder path becomes its last parts)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).strip("/"))[-60:]


def compare(models: Sequence[str | Path], data: Samples | dict[str, Samples], out_dir: str | Path, *,
            protocol: str = "finetune", label_fractions: Sequence[float] = (0.1, 1.0), trials: int = 3,
            metric: str = "auc", seed: int = 0, progress: bool = True, **options: Any) -> dict[str, Any]:
    """Run ``protocol`` for every model and label fraction; write the table and the label-efficiency plot.

    Args:
        models: Registry names or model folders.
        data: The dataset (``Samples`` or its own splits).
        out_dir: Output folder.
        protocol: "finetune" or "probe".
        label_fractions: Shares of the training labels.
        trials: Runs per model and fraction.
        metric: "auc" or "accuracy": the table's and the plot's metric.
        seed: Seed of the splits and of trial 0.
        progress: Progress bars on stderr.
        **options: Passed to the protocol (``image_size``, ``epochs``, ``batch_size``, ``device`` ...).

    Returns:
        ``{"rows": summary rows, "files": {name: path}}``.
    """
    out_dir = Path(out_dir)
    runs, rows = [], []
    for model in models:
        for fraction in label_fractions:
            record = run_protocol(protocol, str(model), data, fraction, out_dir / "runs" / safe_name(model)
                                  / f"fraction-{fraction:g}", trials=trials, seed=seed, progress=progress, **options)
            values = [t["test"][metric] for t in record["trials"]]
            runs += [{"model": str(model), "label_fraction": fraction, "trial": i, metric: v}
                     for i, v in enumerate(values)]
            rows.append({"model": str(model), "label_fraction": fraction, **summarize(values)})
    files = write_outputs(out_dir, runs, rows, metric=metric, title=f"{protocol}, {metric}")
    return {"rows": rows, "files": files, "dataset": getattr(data, "card", None)}


def write_outputs(out_dir: Path, runs: list[dict], rows: list[dict], *, metric: str, title: str) -> dict[str, Path]:
    files = {"runs": write_csv(out_dir / "runs.csv", runs), "table": write_csv(out_dir / "results.csv", rows),
             "plot": label_efficiency_plot(rows, out_dir / "label_efficiency.png", metric=metric, title=title)}
    files["markdown"] = out_dir / "results.md"
    write_text_atomic(files["markdown"], markdown_table(rows, metric) + "\n")
    return files


def _cell(row: dict) -> str:
    if row["mean"] is None:
        return "n/a"
    interval = "" if row["ci95"] is None else f" ± {row['ci95']:.3f}"
    return f"{row['mean']:.3f}{interval} (n={row['n']})"


def markdown_table(rows: Sequence[dict], metric: str) -> str:
    """Models as rows, label fractions as columns; cells ``mean ± 95 % half-width (n=trials)``."""
    fractions = sorted({r["label_fraction"] for r in rows})
    header = f"| model | " + " | ".join(f"{metric} @ {100 * f:g}% labels" for f in fractions) + " |"
    lines = [header, "|" + "---|" * (len(fractions) + 1)]
    for model in dict.fromkeys(r["model"] for r in rows):
        cells = {r["label_fraction"]: _cell(r) for r in rows if r["model"] == model}
        lines.append(f"| {model_label(model)} | " + " | ".join(cells.get(f, "") for f in fractions) + " |")
    return "\n".join(lines)
