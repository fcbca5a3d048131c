"""LPIPS v0.1 perceptual distance (Zhang et al. 2018) from weights pulled through the registry, never behind the
user's back.

The networks are the metric entries ``lpips-alex``, ``lpips-vgg``, ``lpips-squeeze`` (``registry/metrics``): a
torchvision ImageNet trunk and LPIPS' linear layers, fetched with ``store.sources.ensure_source`` (mirror, offline
mode and sha256 pins as for any entry). The distance, as the ``lpips`` package computes it: inputs in [-1, 1] are
shifted and scaled (shift ``(-.030, -.088, -.188)``, scale ``(.458, .448, .450)``); the trunk's activations at its
stage ends are unit-normalised over channels (``x / (||x|| + 1e-10)``); their squared difference goes through the
non-negative 1x1 linear layer of its stage, is averaged over space, and the stages are summed.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConversionError

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# trunk -> (torchvision constructor, the ``features`` index ranges of its stages, as lpips/pretrained_networks.py)
TRUNKS = {
    "alex": ("alexnet", ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))),
    "vgg": ("vgg16", ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))),
    "squeeze": ("squeezenet1_1", ((0, 2), (2, 5), (5, 8), (8, 10), (10, 11), (11, 12), (12, 13))),
}


class LPIPS:
    """One LPIPS network: ``distance(a, b)`` of (N, 3, H, W) images in [-1, 1] -> (N,) distances.

    Args:
        net: "alex", "vgg" or "squeeze".
        trunk_state: The torchvision state dict of the trunk (its ``features.*`` keys are used, all required).
        lin_state: LPIPS' ``lin<i>.model.1.weight`` tensors, one per stage.

    Raises:
        ConversionError: A missing key or a shape that does not fit the trunk.
    """

    def __init__(self, net: str, trunk_state: dict[str, Any], lin_state: dict[str, Any]) -> None:
        import torch
        import torchvision

        builder, stages = TRUNKS[net]
        features = getattr(torchvision.models, builder)(weights=None).features
        wanted = {f"features.{k}": v for k, v in features.state_dict().items()}
        missing = sorted(set(wanted) - set(trunk_state))
        if missing:
            raise ConversionError(f"lpips-{net}: the trunk file lacks {missing[:3]}...; pull it again")
        features.load_state_dict({k[len("features."):]: trunk_state[k] for k in wanted})
        self.stages = [features[a:b].eval() for a, b in stages]
        names = [f"lin{i}.model.1.weight" for i in range(len(stages))]
        if not all(n in lin_state for n in names):
            raise ConversionError(f"lpips-{net}: the linear-layer file lacks lin0..lin{len(stages) - 1}; pull it again")
        self.lins = [lin_state[n] for n in names]
        self.shift = torch.tensor(SHIFT).view(1, 3, 1, 1)
        self.scale = torch.tensor(SCALE).view(1, 3, 1, 1)

    def to(self, device: Any) -> "LPIPS":
        """This network on ``device``."""
        self.stages = [s.to(device) for s in self.stages]
        self.lins = [w.to(device) for w in self.lins]
        self.shift, self.scale = self.shift.to(device), self.scale.to(device)
        return self

    def distance(self, a: Any, b: Any) -> Any:
        """LPIPS distances of two batches of images in [-1, 1]."""
        import torch
        import torch.nn.functional as F

        x, y, total = (a - self.shift) / self.scale, (b - self.shift) / self.scale, 0
        with torch.no_grad():
            for stage, weight in zip(self.stages, self.lins):
                x, y = stage(x), stage(y)
                unit_x = x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                unit_y = y / (y.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + F.conv2d((unit_x - unit_y) ** 2, weight).mean((2, 3))
        return total.flatten()


def load_lpips(net: str, *, progress: bool = True) -> LPIPS:
    """The LPIPS network ``net`` from its metric entry's files (pulled and verified when not cached).

    Raises:
        UnknownModelError: An unknown ``net``.
        OfflineError / ChecksumError / DownloadError: As for any entry's files.

    Example:
        >>> load_lpips("alex").distance(a, b)
    """
    import torch

    from ..registry import get_metric_entry
    from ..store.sources import ensure_source, remember

    entry = get_metric_entry(f"lpips-{net}")
    fetched = [ensure_source(entry, s, progress=progress) for s in entry.sources]
    trunk, lin = (torch.load(f.path, map_location="cpu", weights_only=True) for f in fetched)
    metric = LPIPS(net, trunk, lin)
    for f in fetched:
        remember(entry, f)  # recorded once the files proved to be the networks
    return metric
