"""The run's pictures: extras drawn after the model folders are written, with a warning when they cannot be.

matplotlib is optional (``pip install "ssl_zoo[eval]"``): without it a run still writes its model folders.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import MissingExtraError, PictureWarning
from ..extras import extra_imports
from ..store.atomic import copy_atomic, write_text_atomic

CURVE = "loss_curve.png"


def plot_losses(losses: list[float], path: Path, title: str, validation: list[tuple[int, float]] | None = None,
                selected: int | None = None) -> Path:
    """The loss of every step, the validation loss of every epoch and the step of the output checkpoint when it
    is not the last, as a PNG (matplotlib's Agg backend, no pyplot: the caller's backend is untouched)."""
    with extra_imports():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=150)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(1, len(losses) + 1), losses, linewidth=1, label="training (per step)")
    if validation:
        steps, values = zip(*validation)
        ax.plot(steps, values, "o-", markersize=3, linewidth=1.2, label="validation (per epoch)")
    if selected is not None:
        ax.axvline(selected, color="0.4", linestyle=":", linewidth=1, label=f"output checkpoint (step {selected})")
    if validation or selected is not None:
        ax.legend(frameon=False)
    tail = losses[-max(1, min(10, len(losses) // 10)):]
    ax.set(xlabel="optimiser step", ylabel="loss", title=f"{title}: final {sum(tail) / len(tail):.4g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def add_loss_curve(losses: list[float], run_dir: Path, title: str, folders: list[Path], *,
                   validation: list[tuple[int, float]] | None = None, selected: int | None = None) -> Path | None:
    """Draw ``RUN_DIR/loss_curve.png`` and add it to each model folder and its card; warn when it cannot be drawn.

    ``validation`` (step, loss) per epoch and the ``selected`` output step are drawn too when given.

    Returns:
        The PNG, or None when there was nothing to draw or it could not be drawn.
    """
    if not losses:
        return None
    try:
        curve = plot_losses(losses, run_dir / CURVE, title, validation, selected)
    except MissingExtraError as error:
        warnings.warn(f"the loss curve was not drawn ({error}); the model folders are complete", PictureWarning,
                      stacklevel=2)
        return None
    for folder in folders:
        copy_atomic(curve, folder / CURVE)
        card = folder / "README.md"
        write_text_atomic(card, card.read_text(encoding="utf-8").rstrip("\n") + f"\n\n![loss curve]({CURVE})\n")
    return curve
