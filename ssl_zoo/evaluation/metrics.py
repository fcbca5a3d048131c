"""Classification metrics through scikit-learn: accuracy, mean per-class accuracy and macro AUC for each task.

Mean per-class accuracy (ssl-transfer): the confusion matrix's diagonal over its row sums, averaged over the classes
present in ``targets``; for multilabel it equals the per-label accuracy mean.

Scores are probabilities: binary (N,) of the positive class, multiclass (N, K) softmax, multilabel (N, L) sigmoid.
Macro AUC is the mean one-vs-rest ``roc_auc_score`` over the classes (labels) that have both positives and
negatives in ``targets``; with none it is NaN (a tiny split), which ``stats.summarize`` drops.
"""

from __future__ import annotations

import math

import numpy as np

from ..extras import extra_imports

SCORES = ("accuracy", "mean_per_class_accuracy", "auc")  # the validation scores a dataset may ask selection to use


def classification_metrics(task: str, targets: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """``{"accuracy", "mean_per_class_accuracy", "auc"}`` of ``scores`` against hard ``targets`` (class ids, or a 0/1
    label matrix)."""
    with extra_imports():
        from sklearn.metrics import accuracy_score

    targets, scores = np.asarray(targets), np.asarray(scores, dtype=np.float64)
    if task == "binary":
        scores = scores.reshape(-1)
        predicted = (scores >= 0.5).astype(np.int64)
        return {"accuracy": float(accuracy_score(targets, predicted)),
                "mean_per_class_accuracy": mean_per_class_accuracy(targets, predicted), "auc": _auc(targets, scores)}
    if task == "multiclass":
        onehot = np.eye(scores.shape[1], dtype=np.int64)[targets]
        predicted = scores.argmax(1)
        return {"accuracy": float(accuracy_score(targets, predicted)),
                "mean_per_class_accuracy": mean_per_class_accuracy(targets, predicted), "auc": _macro_auc(onehot, scores)}
    per_label = float(np.mean([accuracy_score(targets[:, j], scores[:, j] >= 0.5) for j in range(targets.shape[1])]))
    return {"accuracy": per_label, "mean_per_class_accuracy": per_label, "auc": _macro_auc(targets, scores)}


def mean_per_class_accuracy(targets: np.ndarray, predicted: np.ndarray) -> float:
    """The mean over the classes in ``targets`` of the share of that class predicted right (confusion-matrix rule)."""
    classes = np.unique(targets)
    return float(np.mean([(predicted[targets == c] == c).mean() for c in classes])) if len(classes) else math.nan


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


def dataset_metric(task: str, wanted: str | None) -> str:
    """The score a dataset selects by: macro AUC for multilabel, else its own metric (``Samples.metric``) when it is
    one of ``SCORES``, else accuracy."""
    if task == "multilabel":
        return "auc"
    return wanted if wanted in SCORES else "accuracy"
