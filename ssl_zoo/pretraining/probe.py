"""``--monitor DATA``: the accuracy of a k-NN or linear probe on the backbone's features, during pre-training.

As lightly and solo-learn do: a small labelled set (class folders, a CSV or an .npz) is split once (its own
train/test arrays, else a seeded 70/30 split), its images are resized once, and every few epochs the backbone
embeds them (eval mode, no gradient). The k-NN is solo-learn's ``WeightedKNNClassifier``: cosine similarity,
the k = 20 nearest training features vote with weight exp(similarity / T), T = 0.07. The linear probe is a
scikit-learn logistic regression on standardised features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import to_tensor
from ..errors import MonitorSetupError

KNN_K = 20
KNN_T = 0.07
TEST_SHARE = 0.3


@dataclass
class ProbeSet:
    """The monitor set, resized: train / test images (N, 3, S, S) in [0, 1] and int labels."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def load_probe_set(path: str, size: int, *, seed: int = 0) -> ProbeSet:
    """Read and resize the labelled monitor set (single-label tasks only).

    Raises:
        MonitorSetupError: For a multi-label or segmentation set.
    """
    from ..evaluation.data import load_item, read_dataset
    from ..evaluation.splits import split_indices

    data = read_dataset(path)
    if isinstance(data, dict):
        train, test = data["train"], data.get("test", data.get("val"))
    else:
        idx = split_indices(len(data), seed=seed, test=TEST_SHARE, val=0.0)
        train, test = data.subset(idx["train"]), data.subset(idx["test"])
    if train.task not in ("binary", "multiclass"):
        raise MonitorSetupError(f"--monitor {path} is a {train.task} set: give one with one class per image")

    def images(samples) -> torch.Tensor:
        return torch.stack([to_tensor(load_item(item), size, 3) for item in samples.items])

    return ProbeSet(images(train), torch.as_tensor(np.asarray(train.targets, dtype=np.int64)),
                    images(test), torch.as_tensor(np.asarray(test.targets, dtype=np.int64)))


@torch.no_grad()
def embed(encoder: nn.Module, images: torch.Tensor, mean, std, device: torch.device, batch: int = 64) -> torch.Tensor:
    """Pooled backbone features of ``images`` (a U-Net encoder's last map is average-pooled), on the CPU."""
    was_training = encoder.training
    encoder.eval()
    m = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=device).view(1, -1, 1, 1)
    out = []
    for chunk in images.split(batch):
        features = encoder((chunk.to(device) - m) / s)
        features = features[-1] if isinstance(features, (list, tuple)) else features
        out.append((features.mean((2, 3)) if features.dim() == 4 else features).float().cpu())
    encoder.train(was_training)
    return torch.cat(out)


def knn_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor,
                 k: int = KNN_K, t: float = KNN_T) -> float:
    """Weighted k-NN accuracy: cosine similarity, votes exp(sim / t) of the k nearest training features."""
    sims = F.normalize(test, dim=1) @ F.normalize(train, dim=1).T
    top, idx = sims.topk(min(k, len(train)), dim=1)
    classes = int(max(train_y.max(), test_y.max())) + 1
    votes = torch.zeros(len(test), classes, dtype=top.dtype).scatter_add_(1, train_y[idx], (top / t).exp())
    return float((votes.argmax(1) == test_y).float().mean())


def linear_accuracy(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor) -> float:
    """Accuracy of a logistic regression on standardised features."""
    from ..extras import extra_imports

    with extra_imports():
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train.numpy(), train_y.numpy())
    return float((model.predict(test.numpy()) == test_y.numpy()).mean())


def probe_accuracy(probe: ProbeSet, kind: str, encoder: nn.Module, mean, std, device: torch.device) -> float:
    """The ``kind`` ("knn" or "linear") accuracy of ``encoder``'s features on the monitor set."""
    train, test = (embed(encoder, x, mean, std, device) for x in (probe.train_x, probe.test_x))
    score = knn_accuracy if kind == "knn" else linear_accuracy
    return score(train, probe.train_y, test, probe.test_y)
