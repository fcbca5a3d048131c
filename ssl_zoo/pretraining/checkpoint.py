"""Resumable training state: written atomically, read back with ``weights_only=True``.

The file holds everything that decides what happens next: the method's state dict (networks, momentum
twins, queues), every optimiser's state, the step (from which the epoch, the position in the data order and
the learning rate follow), torch's RNG states and the loss history. Resuming from it replays the same run.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from ..store.atomic import write_atomic
from ..errors import ResumeError

CHECKPOINT = "checkpoint.pt"


def save(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``run_dir/checkpoint.pt`` atomically: a crash mid-write keeps the previous one."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(run_dir / CHECKPOINT, lambda fh: fh.write(buffer.getbuffer()))


def load(run_dir: Path, signature: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint of ``run_dir``, checked against this run's ``signature``.

    Raises:
        ResumeError: When there is none, or it was written with other settings.
    """
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise ResumeError(f"no {CHECKPOINT} in {run_dir} to resume: drop --resume to start a new run")
    state = torch.load(path, map_location="cpu", weights_only=True)
    differing = sorted(k for k in signature if state["signature"].get(k) != signature[k])
    if differing:
        raise ResumeError(f"{path} was written with other settings ({', '.join(differing)}): "
                          "resume with the same ones, or use a new --out")
    return state


def rng_state() -> dict[str, Any]:
    """torch's CPU RNG state and, on CUDA, every device's."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
