"""Paper-ready figures with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from ..extras import extra_imports


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend."""
    with extra_imports():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

    return plt


VECTOR_SUFFIXES = (".pdf", ".svg")
# metrics bounded to [0, 1]: intervals are clipped to this range in figures
BOUNDED_METRICS = ("auc", "accuracy", "mean_per_class_accuracy", "dice", "iou")
METRIC_LABELS = {"auc": "test AUC (macro)", "accuracy": "test accuracy", "dice": "test Dice"}


def save_figure(fig: Any, path: str | Path) -> list[Path]:
    """Write ``fig`` as the PNG ``path`` and, beside it, as PDF and SVG (vector, for papers); close it.

    Returns:
        The written files, PNG first.
    """
    plt = pyplot()
    png = Path(path).with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for target in (png, *(png.with_suffix(s) for s in VECTOR_SUFFIXES)):
        fig.savefig(target, bbox_inches="tight")
        written.append(target)
    plt.close(fig)
    return written


def clipped_errors(points: Sequence[dict[str, Any]], low: float | None, high: float | None) -> list[list[float]]:
    """Asymmetric error-bar lengths ``[below, above]`` of ``mean ± ci95``, the ends clipped to [low, high]."""
    below, above = [], []
    for r in points:
        half = r["ci95"] or 0.0
        bottom = r["mean"] - half if low is None else max(low, r["mean"] - half)
        top = r["mean"] + half if high is None else min(high, r["mean"] + half)
        below.append(r["mean"] - bottom)
        above.append(top - r["mean"])
    return [below, above]


def label_efficiency_plot(rows: Sequence[dict[str, Any]], path: str | Path, *, metric: str,
                          title: str = "") -> list[Path]:
    """Metric vs label fraction (log axis), one line per model, bars = 95 % t-interval of the mean over trials.

    Args:
        rows: Summary rows with ``model``, ``label_fraction``, ``mean``, ``ci95`` and ``n``.
        path: The PNG to write (PDF and SVG are written beside it).
        metric: The y-axis label; metrics in ``BOUNDED_METRICS`` have their intervals clipped to [0, 1].
        title: The figure title (name the dataset, protocol and metric).

    Returns:
        The written files, PNG first.
    """
    plt = pyplot()
    bounded = metric in BOUNDED_METRICS
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=150)
    models = list(dict.fromkeys(r["model"] for r in rows))
    for i, model in enumerate(models):
        points = sorted((r for r in rows if r["model"] == model and r["mean"] is not None),
                        key=lambda r: r["label_fraction"])
        errors = clipped_errors(points, 0.0 if bounded else None, 1.0 if bounded else None)
        dodge = 1.04 ** (i - (len(models) - 1) / 2)  # side by side on the log axis, so bars do not hide each other
        ax.errorbar([100 * r["label_fraction"] * dodge for r in points], [r["mean"] for r in points], yerr=errors,
                    marker="o", capsize=3, label=model_label(model))
    ax.set_xscale("log")
    fractions = sorted({100 * r["label_fraction"] for r in rows})
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.minorticks_off()
    ax.set_xlabel("labelled training images (%, log scale)")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    if bounded:  # the axis, like the intervals, stays inside the metric's range (room for the markers only)
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, -0.02), min(high, 1.02))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    trials = sorted({r["n"] for r in rows if r.get("n")})
    ax.legend(fontsize=7, title=f"mean ± 95 % CI (t)\nover {'/'.join(map(str, trials))} trials", title_fontsize=7,
              loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def model_label(ref: str) -> str:
    """A legend label: a registry name as it is, a model folder by its folder name."""
    return Path(ref).name if "/" in ref else ref


def invariance_plot(scores: dict[str, dict[str, float]], path: str | Path, *, title: str) -> list[Path]:
    """Two bar panels per transform family: whitened cosine similarity (1 = invariant) and Mahalanobis distance.

    Args:
        scores: ``{family: {"cosine_similarity", "mahalanobis"}}``.
        path: The PNG to write (PDF and SVG beside it).
        title: Names the model and the data.

    Returns:
        The written files, PNG first.
    """
    plt = pyplot()
    names = list(scores)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 0.28 * len(names) + 1.6), dpi=150, sharey=True)
    left.barh(names, [scores[n]["cosine_similarity"] for n in names], xerr=_errors(scores, "cosine_similarity"),
              color="tab:blue", capsize=2, error_kw={"lw": 0.8})
    left.set_xlabel("whitened cosine similarity (1 = invariant)")
    left.axvline(0, color="black", lw=0.6)
    left.set_xlim(min(0.0, *(scores[n]["cosine_similarity"] for n in names)) - 0.02, 1.0)
    right.barh(names, [scores[n]["mahalanobis"] for n in names], xerr=_errors(scores, "mahalanobis"),
               color="tab:orange", capsize=2, error_kw={"lw": 0.8})
    right.set_xlabel("Mahalanobis distance (0 = invariant)")
    left.invert_yaxis()
    for ax in (left, right):
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{title}\nbars: mean over images; whiskers: 95 % t-interval over images", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def _errors(scores: dict[str, dict[str, float]], key: str) -> list[float] | None:
    """The whiskers of one panel, or None when a record has no interval (multi-view, or an older record)."""
    values = [scores[n].get(f"{key}_ci95") for n in scores]
    return None if any(v is None for v in values) else [float(v) for v in values]


def draw_or_warn(draw: Callable[[], list[Path]], what: str) -> list[Path]:
    """``draw()``'s files, or none with a ``PictureWarning`` when matplotlib is missing: results never wait on a
    figure (they are written before it)."""
    import warnings

    from ..errors import MissingExtraError, PictureWarning

    try:
        return draw()
    except MissingExtraError as error:
        warnings.warn(f"the {what} was not drawn ({error}); the results are written", PictureWarning, stacklevel=2)
        return []
