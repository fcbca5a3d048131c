"""A run's metrics as ``metrics.csv`` and TensorBoard event files in the run folder (and Weights & Biases).

One row per logged interval (training loss, learning rate, images/s) and one per epoch (validation loss, probe
accuracy); empty cells where a metric was not measured. A resumed run keeps the rows up to its checkpoint and
purges later TensorBoard events, so the files read like one uninterrupted run.

The event files are written here with TensorBoard's own protobufs and TFRecord framing: ``torch.utils.tensorboard``
imports TensorFlow when it is installed, which must not happen in a process that uses torchvision/timm.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from ..errors import WandbMissingError
from ..extras import extra_imports
from ..store.atomic import write_text_atomic

METRICS = "metrics.csv"
TENSORBOARD = "tensorboard"
COLUMNS = ("step", "epoch", "loss", "lr", "images_per_s", "val_loss", "probe_accuracy")
TAGS = {"loss": "train/loss", "lr": "train/lr", "images_per_s": "train/images_per_s", "val_loss": "val/loss",
        "probe_accuracy": "probe/accuracy"}


class MetricsLog:
    """Writes metric rows to the CSV, TensorBoard and (when asked) Weights & Biases.

    Args:
        run_dir: The run folder.
        resume_step: The checkpoint's step when resuming (rows after it are dropped), else None.
        wandb: Also log to Weights & Biases.
        config: The run's settings, for Weights & Biases.

    Raises:
        WandbMissingError: ``wandb`` asked for but not installed.
    """

    def __init__(self, run_dir: Path, *, resume_step: int | None = None, wandb: bool = False,
                 config: dict[str, Any] | None = None):
        self.path = run_dir / METRICS
        self.wandb = _start_wandb(run_dir, config or {}) if wandb else None
        _keep_rows_until(self.path, resume_step)
        self.tensorboard = EventFile(run_dir / TENSORBOARD, purge_step=None if resume_step is None else resume_step + 1)

    def write(self, step: int, epoch: float, **values: float | None) -> None:
        """One row at ``step`` (``epoch``: epochs done, fractional): ``values`` named as ``COLUMNS`` (None: not measured)."""
        unknown = set(values) - set(COLUMNS)
        if unknown:
            raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {COLUMNS}")
        row = {"step": step, "epoch": round(epoch, 4), **{k: v for k, v in values.items() if v is not None}}
        new = not self.path.is_file()
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, COLUMNS)
            if new:
                writer.writeheader()
            writer.writerow(row)
        for name, value in row.items():
            if name in TAGS:
                self.tensorboard.add_scalar(TAGS[name], value, step)
        if self.wandb is not None:
            self.wandb.log({TAGS[k]: v for k, v in row.items() if k in TAGS}, step=step)

    def close(self) -> None:
        self.tensorboard.close()
        if self.wandb is not None:
            self.wandb.finish()


class EventFile:
    """A TensorBoard event file of scalars (``events.out.tfevents.*``), flushed after every record.

    Args:
        folder: Where the file goes (created).
        purge_step: A resumed run's first new step: TensorBoard then drops the older files' events from it on.
    """

    def __init__(self, folder: Path, *, purge_step: int | None = None):
        with extra_imports():
            from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        folder.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.ssl_zoo"
        self.file = (folder / name).open("ab")
        self._write(Event(wall_time=time.time(), file_version="brain.Event:2"))
        if purge_step is not None:  # a session START at a step makes TensorBoard purge that step and later ones
            self._write(Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START)))

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """One scalar at ``step``."""
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])
        self._write(Event(wall_time=time.time(), step=int(step), summary=summary))

    def _write(self, event: Any) -> None:
        """One TFRecord: length, its masked crc32c, the serialised event, its masked crc32c (little-endian)."""
        from ..converters.readers.tf_checkpoint import masked_crc32c

        data = event.SerializeToString()
        header = struct.pack("<Q", len(data))
        self.file.write(header + struct.pack("<I", masked_crc32c(header)) + data
                        + struct.pack("<I", masked_crc32c(data)))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def read_metrics(path: Path) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv`` as numbers (empty cells left out)."""
    with path.open(newline="") as fh:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(fh)]


def _keep_rows_until(path: Path, step: int | None) -> None:
    if not path.is_file():
        return
    if step is None:
        path.unlink()
        return
    rows = [r for r in csv.DictReader(path.open(newline="")) if int(r["step"]) <= step]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buffer.getvalue())


def _start_wandb(run_dir: Path, config: dict[str, Any]):
    try:
        import wandb
    except ImportError as exc:
        raise WandbMissingError("Weights & Biases logging needs wandb: pip install wandb (then wandb login), "
                                "or drop --wandb") from exc
    return wandb.init(dir=str(run_dir), config=config, name=run_dir.name, resume="allow")
