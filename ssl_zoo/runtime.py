"""Where and how fast a training or inference loop runs: device, bf16 autocast, channels_last, compile, DDP.

Fine-tuning (``ssl_zoo.evaluation``) and pre-training (``ssl_zoo.pretraining``) share these, so "fast" means
the same thing in both and in their benchmarks. ``Speed.plain()`` is the baseline those benchmarks compare with:
fp32, contiguous NCHW, no compile, what the original method repositories run.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from typing import Any, Iterator

import torch
from torch import nn


@dataclass(frozen=True)
class Speed:
    """How a loop runs.

    Attributes:
        device: Where tensors live.
        bf16: bf16 autocast for the forward pass (CUDA only; ignored on CPU, where it is slower).
        channels_last: NHWC memory format for 4-D activations and weights (CUDA only: tensor-core friendly).
        compile: Wrap the model in ``torch.compile``.
        workers: DataLoader worker processes.
    """

    device: torch.device
    bf16: bool = True
    channels_last: bool = True
    compile: bool = False
    workers: int = 0

    @classmethod
    def fast(cls, device: str | torch.device | None = None, *, compile: bool = False,
             workers: int | None = None) -> "Speed":
        """The fast settings for ``device`` (default: CUDA when present, else CPU).

        Nothing process-wide changes here: the cuDNN/TF32 flags are switched only inside ``numerics()``.
        """
        dev = pick_device(device)
        cuda = dev.type == "cuda"
        if workers is None:
            workers = min(8, os.cpu_count() or 1) if cuda else 0
        return cls(device=dev, bf16=cuda, channels_last=cuda, compile=compile, workers=workers)

    @contextlib.contextmanager
    def numerics(self) -> Iterator[None]:
        """cuDNN autotuning and TF32 matmuls while the block runs (fast settings on CUDA only).

        These flags are process-wide: a library call must not leave its caller's numerics changed, so the
        previous values come back when the block ends, also on an exception.

        Example:
            >>> with Speed.fast().numerics():
            ...     features = model(images)
        """
        if not (self.bf16 and self.device.type == "cuda"):  # plain() or CPU: the caller's settings as they are
            yield
            return
        saved = _numerics_flags()
        _set_numerics_flags((True, True, True))  # fixed input sizes: let cuDNN pick the fastest kernels
        try:
            yield
        finally:
            _set_numerics_flags(saved)

    def plain(self) -> "Speed":
        """The same device in plain fp32, NCHW, uncompiled: the baseline of the speed benchmarks."""
        return replace(self, bf16=False, channels_last=False, compile=False)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when enabled, else a no-op context."""
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` moved to the device in this memory format, compiled if asked (the original is moved too)."""
        model = model.to(self.device, memory_format=self.memory_format)
        return torch.compile(model) if self.compile else model

    def batch(self, tensor: torch.Tensor) -> torch.Tensor:
        """An input batch on the device (asynchronous copy from pinned memory), in this memory format if 4-D."""
        tensor = tensor.to(self.device, non_blocking=True)
        return tensor.contiguous(memory_format=self.memory_format) if tensor.dim() == 4 else tensor

    def loader_kwargs(self) -> dict[str, Any]:
        """DataLoader keyword arguments: workers, pinned memory on CUDA, persistent workers."""
        kwargs: dict[str, Any] = {"num_workers": self.workers, "pin_memory": self.device.type == "cuda"}
        if self.workers:
            kwargs.update(persistent_workers=True, prefetch_factor=4)
        return kwargs


def _numerics_flags() -> tuple[bool, bool, bool]:
    """(cuDNN benchmark, TF32 matmul, TF32 cuDNN) as the process has them now."""
    return (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def _set_numerics_flags(flags: tuple[bool, bool, bool]) -> None:
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; None picks this process's CUDA device under torchrun, CUDA, or CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


@dataclass(frozen=True)
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the ``torchrun`` process group when launched by torchrun (NCCL on CUDA, gloo on CPU)."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    if world_size <= 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size())


@contextlib.contextmanager
def distributed_session(device: torch.device) -> Iterator[Distributed]:
    """``init_distributed`` for the duration of a ``with`` block; the process group is destroyed after it."""
    dist_info = init_distributed(device)
    try:
        yield dist_info
    finally:
        if dist_info.enabled:
            import torch.distributed as dist

            dist.destroy_process_group()
