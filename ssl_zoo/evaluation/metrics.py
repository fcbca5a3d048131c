"""Classification metrics through scikit-learn: accuracy and macro AUC for each task.

Scores are probabilities: binary (N,) of the positive class, multiclass (N, K) softmax, multilabel (N, L) sigmoid.
Macro AUC is the mean one-vs-rest ``roc_auc_score`` over the classes (labels) that have both positives and
negatives in ``targets``; with none it is NaN (a tiny split), which ``stats.summarize`` drops.
"""

from __future__ import annotations

import math

import numpy as np

from ..extras import extra_imports


def classification_metrics(task: str, targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "auc"}`` of ``scores`` against hard ``targets`` (class ids, or 0/1 label matrix)."""
    with extra_imports():
        from sklearn.metrics import accuracy_score

    targets, scores = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    if task == "binary":
        scores = scores.reshape(-1)
        return {"accuracy": float(accuracy_score(targets, scores >= 0.5)), "auc": _auc(targets, scores)}
    if task == "multiclass":
        onehot = np.eye(scores.shape[1], dtype=np.int64)[targets]
        auc = _macro_auc(onehot, scores)
        return {"accuracy": float(accuracy_score(targets, scores.argmax(1))), "auc": auc}
    per_label = [accuracy_score(targets[:, j], scores[:, j] >= 0.5) for j in range(targets.shape[1])]
    return {"accuracy": float(np.mean(per_label)), "auc": _macro_auc(targets, scores)}


def _auc(targets: np.ndarray, scores: np.ndarray) -> float:
    with extra_imports():
        from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(targets, scores)) if len(np.unique(targets)) == 2 else math.nan


def _macro_auc(onehot: np.ndarray, scores: np.ndarray) -> float:
    values = [_auc(onehot[:, j], scores[:, j]) for j in range(onehot.shape[1])]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


def primary_metric(metrics: dict[str, float]) -> float:
    """The model-selection value: AUC, or accuracy where AUC is undefined."""
    return metrics["accuracy"] if math.isnan(metrics["auc"]) else metrics["auc"]
