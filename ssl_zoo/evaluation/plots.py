"""Paper-ready figures with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..extras import extra_imports


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    with extra_imports():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


def label_efficiency_plot(rows: Sequence[dict[str, Any]], path: str | Path, *, metric: str, title: str = "") -> Path:
    """Metric vs label fraction, one line per model, error bars = 95 % interval (none for a single trial).

    Args:
        rows: Summary rows with ``model``, ``label_fraction``, ``mean`` and ``ci95``.
        path: The PNG to write.
        metric: The y-axis label.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=150)
    for model in dict.fromkeys(r["model"] for r in rows):
        points = sorted((r for r in rows if r["model"] == model and r["mean"] is not None),
                        key=lambda r: r["label_fraction"])
        ax.errorbar([100 * r["label_fraction"] for r in points], [r["mean"] for r in points],
                    yerr=[r["ci95"] or 0.0 for r in points], marker="o", capsize=3, label=model_label(model))
    ax.set_xscale("log")
    fractions = sorted({100 * r["label_fraction"] for r in rows})
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images (%)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def model_label(ref: str) -> str:
    """A legend label: a registry name as it is, a model folder by its folder name."""
    return Path(ref).name if "/" in ref else ref
