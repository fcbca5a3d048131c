"""Multi-GPU fine-tuning under ``torchrun``: DDP wrapping, sharded training batches, one shared decision.

Each process trains on its shard of every epoch (``DistributedSampler``) and DDP averages the gradients. Every
process then scores the whole validation split itself; rank 0's value is broadcast so that the learning-rate
schedule and early stopping decide the same on every rank (bf16 kernels may differ by a rounding between GPUs,
and a split decision would hang the job).
"""

from __future__ import annotations

from typing import Any

from ..runtime import Distributed


def wrap(net: Any, speed: Any, dist_info: Distributed) -> Any:
    """``net`` in ``DistributedDataParallel`` when the job has several processes, else ``net`` itself."""
    if not dist_info.enabled:
        return net
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[speed.device] if speed.device.type == "cuda" else None)


def sampler(dataset: Any, dist_info: Distributed, seed: int) -> Any:
    """A shuffling ``DistributedSampler`` of ``dataset`` (None in a single process)."""
    if not dist_info.enabled:
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(dataset, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True,
                              seed=seed)


def agree(value: float, dist_info: Distributed) -> float:
    """Rank 0's ``value`` on every rank."""
    if not dist_info.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
