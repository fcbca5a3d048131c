"""View-pipeline throughput: the augmented views of moco-v2 / byol / swav (multi-crop) at 224 px, drawn per sample
in CPU data-loader workers vs. batched on the device (kornia), side by side.

Three figures per recipe, all in images/s (one image = all of its views):
- ``workers``: the CPU path of a CPU run: workers decode, resize and draw every view (``augment.recipe_views``);
- ``device only``: ``views.make_views`` on a batch already on the device (the augmentation cost alone);
- ``loader + device``: the GPU path end to end: workers only decode and resize, the device draws the views.
The target (on CUDA): the device path is not the bottleneck, i.e. ``loader + device`` >= the training step's
images/s of ``bench_pretrain.py``; on a CPU the device path runs on the CPU and the figures are for information.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, make_parser, print_table, scratch_dir  # noqa: E402
from bench_pretrain import write_data  # noqa: E402

RECIPES = ("moco-v2", "byol", "swav")


def loader_rate(dataset, batch: int, workers: int, batches: int, consume) -> float:
    """Images/s of ``batches`` batches from a DataLoader over ``dataset`` (after one untimed batch)."""
    import torch
    from torch.utils.data import DataLoader

    from ssl_zoo.pretraining.data import ResumableBatches

    sampler = ResumableBatches(len(dataset), batch, seed=0, epoch=0)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=torch.cuda.is_available(),
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    it = iter(loader)
    consume(next(it))
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        consume(next(it))
        seen += batch
    return seen / (time.perf_counter() - start)


def device_rate(recipe, batch: int, size: int, device, rounds: int) -> float:
    """Images/s of ``make_views`` alone on a batch that is already on the device."""
    import torch

    from ssl_zoo.pretraining.views import make_views

    images = torch.rand(batch, 3, size, size, device=device)
    make_views(recipe, images, device=device)  # untimed: kernels, caches
    _sync(device)
    start = time.perf_counter()
    for _ in range(rounds):
        make_views(recipe, images, device=device)
    _sync(device)
    return rounds * batch / (time.perf_counter() - start)


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = make_parser(__doc__.splitlines()[0], default_repeat=1)
    parser.add_argument("--batch-size", type=int, help="default 256 on CUDA, 16 on CPU")
    parser.add_argument("--batches", type=int, help="timed batches (default 20 on CUDA, 3 on CPU)")
    parser.add_argument("--workers", type=int, help="data-loader processes (default: every CPU core, at most 16)")
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args()
    import os

    import torch

    from ssl_zoo.pretraining.augment import recipe_views
    from ssl_zoo.pretraining.data import ViewDataset, scan
    from ssl_zoo.pretraining.views import images_only, make_views, view_recipe

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    batch = args.batch_size or (256 if cuda else 16)
    batches = args.batches or (2 if args.quick else 20 if cuda else 3)
    workers = args.workers if args.workers is not None else min(16, os.cpu_count() or 1)
    size = args.image_size
    print(machine_line())
    print(f"device {device}, {size}px, batch {batch}, {batches} timed batches, {workers} workers")
    rows = []
    with scratch_dir("ssl_zoo_bench_views") as tmp:
        samples = scan(write_data(tmp / "images.npz", (batches + 1) * batch, size))
        for name in RECIPES:
            recipe = view_recipe(name, size=size)
            on_cpu = loader_rate(ViewDataset(samples, recipe_views(recipe), size), batch, workers, batches,
                                 lambda b: None)
            alone = device_rate(recipe, batch, size, device, max(batches, 3))

            def draw(b, recipe=recipe):
                make_views(recipe, b["image"].to(device, non_blocking=True), device=device)
                _sync(device)

            end_to_end = loader_rate(ViewDataset(samples, images_only, size), batch, workers, batches, draw)
            rows.append((f"{name} ({len(recipe.keys)} views)", on_cpu, alone, end_to_end,
                         f"{end_to_end / on_cpu:.2f}x"))
    print_table(["recipe", "workers img/s", "device only img/s", "loader + device img/s", "device/workers"], rows)
    if not cuda:
        print("CPU run: the 'device' path ran on the CPU too; figures for information (the target is a GPU target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
