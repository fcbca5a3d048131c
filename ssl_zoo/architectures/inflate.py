"""2-D weights to 3-D ones, as I3D inflates ImageNet filters (Carreira & Zisserman 2017, arXiv:1705.07750 §2.3).

The rule, a pure function of the state dict:

- a convolution kernel ``(out, in, k, k)`` becomes ``(out, in, k, k, k)``: the ``k x k`` kernel repeated over a
  depth of ``k`` and divided by ``k``, so a volume whose slices are all equal gives each 3-D filter the response
  the 2-D filter gives on one slice (1x1 kernels get depth 1: they are copied unchanged but for the new axis);
- BatchNorm parameters and running statistics, biases and linear layers are copied unchanged;
- strides and paddings become isotropic: the 7x7/2 stem becomes a 7x7x7 convolution of stride 2 in depth as in
  height and width (what MONAI's 3-D ``DenseNet121`` fixes, and MONAI's 3-D MedicalNet ResNets use).

What "the same features" holds up to: the zero padding in depth. A 3-D feature at a depth position whose
receptive field lies inside the volume equals the 2-D feature of the slice; positions within a receptive field
of the first or last slice see zero slices, so pooled features of a shallow volume differ from the 2-D ones.
"""

from __future__ import annotations

import torch

INFLATION_RULE = ("I3D: each k x k kernel repeated over a depth of k and divided by k; BatchNorm, biases and linear "
                  "layers copied; stem 7x7x7 with stride 2 in depth, height and width; every stride isotropic")
STEM_DEPTH = 7
STEM_STRIDE = 2


def inflate_kernel(kernel: torch.Tensor) -> torch.Tensor:
    """One 2-D convolution kernel ``(out, in, kh, kw)`` as a 3-D one ``(out, in, kh, kh, kw)``, divided by ``kh``.

    Example:
        >>> inflate_kernel(torch.ones(8, 3, 7, 7)).shape
        torch.Size([8, 3, 7, 7, 7])
    """
    depth = kernel.shape[-2]
    return (kernel.unsqueeze(2).expand(-1, -1, depth, -1, -1) / depth).contiguous()


def inflate_state_dict(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every 2-D convolution kernel of ``weights`` inflated (``inflate_kernel``); every other tensor unchanged.

    Args:
        weights: A 2-D network's state dict (convolution kernels are its 4-D tensors).

    Returns:
        The state dict of the same network built with 3-D layers (same keys).

    Example:
        >>> inflate_state_dict({"conv1.weight": torch.ones(64, 3, 7, 7)})["conv1.weight"].sum() == 64 * 3 * 49
        tensor(True)
    """
    return {key: inflate_kernel(value) if value.dim() == 4 else value for key, value in weights.items()}
