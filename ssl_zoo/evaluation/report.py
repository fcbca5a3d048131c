"""The record of a protocol run over trials, and its files: ``<protocol>.json``, ``splits.json`` and the scores.

A trial may carry ``test_scores``: its per-image test predictions in test-split order (binary (N,), multiclass
(N, K) probabilities, multilabel (N, L)), which ``compare`` pairs across models. They are written beside the record
as float32 ``test_scores-trial-<t>.npy`` (a test set of 25,000 images x 14 labels is 1.4 MB there, but several MB
of JSON lines) and the trial's ``"test_scores"`` names that file; ``read_record`` loads them back. Nothing is
written, and no scores are recorded, when the run has no ``out_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ResumeError
from ..store.atomic import write_atomic
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
        for trial, name in zip(record["trials"], save_scores(out_dir, runs)):
            if name is not None:
                trial["test_scores"] = name
        save_trials(out_dir, filename, record, index, runs, parts)
    return record


def save_scores(out_dir: str | Path, runs: list[dict]) -> list[str | None]:
    """Write each run's ``test_scores`` as float32 ``test_scores-trial-<t>.npy`` in ``out_dir``; the file names
    (None for a run without scores)."""
    names: list[str | None] = []
    for t, run in enumerate(runs):
        scores = run.get("test_scores")
        names.append(None if scores is None else f"test_scores-trial-{t}.npy")
        if scores is not None:
            array = np.asarray(scores, dtype=np.float32)
            write_atomic(Path(out_dir) / names[-1], lambda fh, a=array: np.save(fh, a, allow_pickle=False))
    return names


def read_record(path: str | Path) -> dict[str, Any]:
    """A ``<protocol>.json`` record with each trial's ``test_scores`` file (named in it) loaded as an array.

    Raises:
        FileNotFoundError: The record is missing.
        ResumeError: A scores file the record names is missing.
    """
    path = Path(path)
    record = json.loads(path.read_text())
    for trial in record.get("trials", []):
        if isinstance(trial.get("test_scores"), str):  # a file beside the record (inline lists stay as they are)
            scores = path.parent / Path(trial["test_scores"]).name
            if not scores.is_file():
                raise ResumeError(f"{path} names {scores.name}, which is missing; delete {path.name} to run it "
                                  f"again, or use a new output folder")
            trial["test_scores"] = np.load(scores, allow_pickle=False)
    return record


def trials_record(protocol: str, model: Any, parts: dict[str, Samples], runs: list[dict], *, seed: int,
                  label_fraction: float, metrics: Sequence[str], ddof: int = 1) -> dict[str, Any]:
    """Per-trial results (without their index lists and scores) and ``stats.summarize`` of each test metric."""
    return {"protocol": protocol, "model": str(model), "task": parts["train"].task, "seed": seed,
            "label_fraction": label_fraction, "sizes": {k: len(v) for k, v in parts.items()},
            "dataset": parts["train"].card,
            "trials": [{k: v for k, v in r.items() if k not in ("train_indices", "test_scores")} for r in runs],
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
