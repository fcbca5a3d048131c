"""Tiny structured unlabelled data for the pre-training tests, and the small settings every method trains with."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

SIZE = 32
# Small heads, queues and prototypes so one step of any method takes well under a second on a CPU core.
OPTIONS = {"moco-v2": {"queue": 16}, "dira": {"queue": 16, "mode": "dira"}, "byol": {"hidden": 128},
           "barlow-twins": {"hidden": 128}, "swav": {"prototypes": 16, "small_crops": 2},
           "spark": {"decoder_width": 64}}


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads contend and run several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int) -> Callable[[], None]:
    """Make the training loop raise KeyboardInterrupt at ``step`` (a run cut short); returns the undo."""
    from ssl_zoo.pretraining import loop

    real_step = loop._Run.step

    def crash(self, batch, at):
        if at == step:
            raise KeyboardInterrupt
        return real_step(self, batch, at)

    monkeypatch.setattr(loop._Run, "step", crash)
    return lambda: monkeypatch.setattr(loop._Run, "step", real_step)


def write_images(path: Path, n: int = 16, seed: int = 0) -> Path:
    """``n`` 32x32 grey images of four kinds (discs, squares, vertical and horizontal stripes) as one .npz."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    images = np.zeros((n, SIZE, SIZE), np.uint8)
    for i in range(n):
        cx, cy = rng.integers(8, 24, 2)
        shapes = [(xx - cx) ** 2 + (yy - cy) ** 2 < 36, (abs(xx - cx) < 6) & (abs(yy - cy) < 6),
                  (xx // 4) % 2 == 0, (yy // 4) % 2 == 0]
        images[i] = np.where(shapes[i % 4], 220, 30)
    np.savez(path, images=images)
    return path


def write_volumes(path: Path, volumes: int = 4, depth: int = 8, seed: int = 1) -> Path:
    """Volumes whose structure follows the slice position (a disc growing with depth), as an .npz 'volumes'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = np.zeros((volumes, depth, SIZE, SIZE), np.uint8)
    for v in range(volumes):
        for d in range(depth):
            radius = 3 + 1.5 * d
            out[v, d] = np.where((xx - 16) ** 2 + (yy - 16) ** 2 < radius ** 2, 200, 40) + rng.integers(0, 20, (SIZE, SIZE))
    np.savez(path, volumes=out)
    return path
