"""The input guard: a model from ``ssl_zoo.load`` checks its first batch against its stored preprocessing, once.

What the transform of the entry produces is known from its record: values within ``[(0 - mean) / std,
(scale - mean) / std]`` when it normalises, within ``[0, scale]`` when it does not, and as many channels as the
network's first convolution takes. A first batch that does not fit gets one ``InputWarning`` naming what it looks
like and the transform to use: its 1st or 99th percentile beyond that range by more than the range's width (raw
0-255 pixels, Hounsfield units), [0,1] images where normalised ones are expected, channels that vary far less than
any preprocessed image does (scaled twice; [0,1] for a [0,255] recipe), a mean outside the range, or another
channel count. The check is a forward pre-hook that removes itself on the first call, so later batches cost
nothing; it reads the input and never changes it, and hooks are not part of ``state_dict``. Turned off by
``load(..., guard=False)`` or ``SSL_ZOO_INPUT_GUARD=0``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import InputWarning, SettingError
from .preprocessing import preprocessing_of
from .registry import Preprocessing

GUARD_ENV = "SSL_ZOO_INPUT_GUARD"
_ON, _OFF = {"", "1", "true", "yes", "on"}, {"0", "false", "no", "off"}
SAMPLE = 1 << 20  # values looked at: quantiles of a strided sample are as telling as of the whole batch
FLAT = 0.02  # of the expected range: a channel std below this is no preprocessed image (constant ones are silent)


@dataclass(frozen=True)
class Expected:
    """What the entry's transform produces: channel count and value range, and whether it is normalised."""

    channels: int
    low: float
    high: float
    normalized: bool


def guard_enabled(requested: bool = True) -> bool:
    """Whether to attach the guard: ``requested`` and ``SSL_ZOO_INPUT_GUARD`` not set to 0/false/no/off.

    Raises:
        SettingError: When ``SSL_ZOO_INPUT_GUARD`` holds another value.
    """
    value = os.environ.get(GUARD_ENV, "").strip().lower()
    if value not in _ON | _OFF:
        raise SettingError(f"{GUARD_ENV}={value!r}: set it to 1 (check the first batch) or 0 (do not)")
    return requested and value not in _OFF


def expected_input(pre: Preprocessing, channels: int) -> Expected:
    """The value range and channels of what ``ssl_zoo.transforms`` makes from ``pre``, for ``channels`` inputs."""
    scale = pre.value_scale
    if not pre.normalized:
        return Expected(channels, 0.0, scale, False)
    bounds = [((0.0 - m) / s, (scale - m) / s) for m, s in zip(pre.mean, pre.std)]
    return Expected(channels, min(lo for lo, _ in bounds), max(hi for _, hi in bounds), True)


def input_problems(x: torch.Tensor, expected: Expected) -> list[str]:
    """What in batch ``x`` (N, C, ...) differs from what the transform produces; empty when it looks right."""
    problems = []
    if x.dim() >= 3 and x.shape[1] != expected.channels:
        problems.append(f"{x.shape[1]} channels (the network takes {expected.channels})")
    flat = x.detach().reshape(-1)
    values = flat[:: max(1, flat.numel() // SAMPLE)].float()
    low, high = (float(q) for q in torch.quantile(values, values.new_tensor([0.01, 0.99])))
    span = expected.high - expected.low  # a range this far outside is no augmentation or odd image
    if low < expected.low - span or high > expected.high + span:
        problems.append(_out_of_range(float(values.min()), float(values.max())))
    elif expected.normalized and 0.0 <= low < high <= 1.0 and expected.low < -0.5:
        problems.append(f"intensities in [{low:.3g}, {high:.3g}] that skipped the mean/std normalisation")
    if not problems:
        problems.extend(_spread_problems(x.detach().float(), expected))
    return problems


def _spread_problems(x: torch.Tensor, expected: Expected) -> list[str]:
    """Channels that vary far less than any image's do after the transform (scaled twice, or [0,1] for [0,255]),
    or a mean no preprocessed image can have; a constant batch (a smoke test) is left alone."""
    by_channel = x.transpose(0, 1).reshape(x.shape[1], -1) if x.dim() >= 3 else x.reshape(1, -1)
    spread = float(by_channel.std(dim=1).max()) if by_channel.shape[1] > 1 else 0.0
    if 0.0 < spread < FLAT * (expected.high - expected.low):
        return [f"values that vary far less than preprocessed ones (largest channel std {spread:.2g}, where the "
                f"transform's output spans [{expected.low:.3g}, {expected.high:.3g}])"]
    mean = float(x.mean())
    if not expected.low <= mean <= expected.high:
        return [f"a mean of {mean:.3g}, which no preprocessed image has (each lies in "
                f"[{expected.low:.3g}, {expected.high:.3g}])"]
    return []


def _out_of_range(low: float, high: float) -> str:
    if low < -200.0:
        return f"Hounsfield units or other raw scanner values (from {low:.4g} to {high:.4g})"
    if low >= 0.0 and high <= 255.5:
        return f"raw 0-255 pixels (from {low:.4g} to {high:.4g})"
    return f"values from {low:.4g} to {high:.4g}"


class InputGuard:
    """The forward pre-hook: checks the first batch, warns at most once, removes itself; returns None."""

    def __init__(self, expected: Expected, expects: str, ref: str) -> None:
        self.expected, self.expects, self.ref = expected, expects, ref
        self.handle: torch.utils.hooks.RemovableHandle | None = None

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if self.handle is not None:
            self.handle.remove()  # later batches run without any hook
            self.handle = None
        x = args[0] if args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return
        with torch.no_grad():
            problems = input_problems(x, self.expected)
        if problems:
            warnings.warn(f"{self.ref}: the first batch looks like {'; '.join(problems)}, but the model expects "
                          f"{self.expects}: preprocess with ssl_zoo.transforms({self.ref!r}) (checked once; "
                          f"guard=False or {GUARD_ENV}=0 turns this off)", InputWarning, stacklevel=4)


def attach_guard(model: nn.Module, folder: Path, ref: str | Path) -> nn.Module:
    """Give ``model`` the one-batch input check (module doc); its channels are its first convolution's.

    Args:
        model: What ``load`` built from ``folder``.
        folder: The model folder, whose preprocessing record the check uses.
        ref: What the user passed to ``load`` (``transforms`` takes the same references).

    Returns:
        ``model`` itself; its ``state_dict`` and outputs are unchanged.
    """
    pre = preprocessing_of(folder)
    first = next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))), None)
    channels = first.in_channels if first is not None else pre.input_size[0]
    guard = InputGuard(expected_input(pre, channels), pre.describe(), str(ref))
    guard.handle = model.register_forward_pre_hook(guard)
    return model
