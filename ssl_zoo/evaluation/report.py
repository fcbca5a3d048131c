"""The record of a protocol run over trials, and its files: ``<protocol>.json`` and ``splits.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .data import Samples
from .results import write_json
from .splits import write_splits
from .stats import summarize


def report_trials(protocol: str, model: Any, parts: dict[str, Samples], index: dict, runs: list[dict], *,
                  seed: int, label_fraction: float, metrics: Sequence[str], out_dir: str | Path | None,
                  filename: str, extra: dict[str, Any] | None = None, ddof: int = 1) -> dict[str, Any]:
    """The trials' record (``trials_record``) plus ``extra`` (the preset record ...), also written to ``out_dir`` as
    ``filename`` with the splits. ``ddof`` 0 gives the population std over trials (BenchmarkTransferLearning)."""
    record = {**trials_record(protocol, model, parts, runs, seed=seed, label_fraction=label_fraction,
                              metrics=metrics, ddof=ddof), **(extra or {})}
    if out_dir is not None:
        save_trials(out_dir, filename, record, index, runs, parts)
    return record


def trials_record(protocol: str, model: Any, parts: dict[str, Samples], runs: list[dict], *, seed: int,
                  label_fraction: float, metrics: Sequence[str], ddof: int = 1) -> dict[str, Any]:
    """Per-trial results (without their index lists) and ``stats.summarize`` of each test metric."""
    return {"protocol": protocol, "model": str(model), "task": parts["train"].task, "seed": seed,
            "label_fraction": label_fraction, "sizes": {k: len(v) for k, v in parts.items()},
            "dataset": parts["train"].card,
            "trials": [{k: v for k, v in r.items() if k != "train_indices"} for r in runs],
            "summary": {m: summarize([r["test"][m] for r in runs], ddof=ddof) for m in metrics}}


def save_trials(out_dir: str | Path, filename: str, record: dict, index: dict, runs: list[dict],
                parts: dict[str, Samples] | None = None) -> None:
    """Write ``record`` and the split indices with each trial's label-fraction subset; for a dataset card also
    its name, version and convention and the group ids of each split, so that the run can be repeated."""
    splits = {"seed": record["seed"], "splits": index, "label_fraction": record["label_fraction"],
              "train_subsets": [r["train_indices"] for r in runs]}
    if record.get("dataset"):
        splits["dataset"] = record["dataset"]
    if parts is not None and parts["train"].groups is not None:
        splits["groups"] = {k: sorted(set(np.asarray(v.groups).astype(str).tolist())) for k, v in parts.items()}
    write_splits(out_dir, splits)
    write_json(Path(out_dir) / filename, record)
