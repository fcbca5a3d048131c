"""Pre-training throughput: each method in ssl_zoo's fast loop vs. the same method in a plain fp32 NCHW loop.

Both variants run the same ``ssl_zoo.pretraining.loop.train`` on the same synthetic images; the fast one
uses ``Speed.fast()`` (bf16 autocast + channels_last on CUDA, optional compile) and draws the generic view
recipes (moco-v2, simclr, byol, swav, barlow-twins) batched on the device; the plain one uses
``Speed.plain()`` (fp32, contiguous NCHW, no compile) with every view drawn per sample in the CPU workers,
the way the original method repositories train.
Each (method, variant) first trains 2 untimed steps (cuDNN autotuning, compilation), then the timed run;
variants alternate per method. On CUDA the peak GPU memory of each timed run is reported.

On a CPU, bf16 and channels_last are off in both variants (they are slower there) and the "device" views run
on the CPU in the main process, so the ratio says little: the >= 2x target is a GPU target.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, make_parser, print_table, private_home, scratch_dir  # noqa: E402

TARGET = 2.0
# Smaller heads / queues than the defaults only where the defaults are sized for ImageNet-scale batches.
QUICK_OPTIONS = {"moco-v2": {"queue": 4096}, "dira": {"queue": 4096}, "swav": {"small_crops": 2}}


def write_data(path: Path, n: int, size: int) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images = np.stack([np.where((xx // (4 + i % 9)) % 2 == (yy // (4 + i % 7)) % 2, 200, 40).astype(np.uint8)
                       + rng.integers(0, 30, (size, size), dtype=np.uint8) for i in range(n)])
    np.savez(path, images=images)
    return path


def images_per_second(method_name: str, data: Path, speed, args, options: dict, steps: int, run_dir: Path,
                      views: str = "workers"):
    """(images/s, peak GPU MiB or None) of ``steps`` training steps of a freshly built method.

    ``views``: "device" draws a generic view recipe batched on the device, "workers" per sample on the CPU.
    """
    import torch

    from ssl_zoo.pretraining.base import MethodSettings, build_method
    from ssl_zoo.pretraining.data import ViewDataset, scan
    from ssl_zoo.pretraining.loop import LoopSettings, train
    from ssl_zoo.pretraining.run import device_recipe, worker_views
    from ssl_zoo.pretraining.views import images_only, recipe_for

    torch.manual_seed(0)
    method = build_method(method_name, MethodSettings(arch=args.arch, image_size=args.image_size, options=options))
    volumes = [s for s in scan(data)]
    samples = [type(s)(s.read, volume=i % 4, position=(i % 8 + 0.5) / 8) for i, s in enumerate(volumes)]
    settings = LoopSettings(epochs=1, batch_size=args.batch_size, checkpoint_every=10**9, progress=False)
    if recipe_for(method) is None:
        views = "workers"  # methods with their own views (dira, magical, ...) always draw them in the workers
    recipe = device_recipe(method, views, speed.device.type)
    view_fn = images_only if recipe is not None else worker_views(method)
    warm = ViewDataset(samples[: 2 * args.batch_size], view_fn, args.image_size)
    train(method, warm, run_dir, settings, speed, views=recipe)  # untimed: autotuning, compilation, allocations
    if speed.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timed = ViewDataset(samples[: steps * args.batch_size], view_fn, args.image_size)
    result = train(method, timed, run_dir, settings, speed, views=recipe)
    peak = torch.cuda.max_memory_allocated() / 2**20 if speed.device.type == "cuda" else None
    return result.images_per_second, peak


def main() -> int:
    parser = make_parser(__doc__.splitlines()[0], default_repeat=1)
    parser.add_argument("--methods", nargs="+", help="default: every method")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 30 on CUDA, 3 on CPU)")
    parser.add_argument("--batch-size", type=int, help="default 64 on CUDA, 8 on CPU")
    parser.add_argument("--image-size", type=int, help="default 224 on CUDA, 64 on CPU")
    parser.add_argument("--arch", help="default resnet50 on CUDA, resnet18 on CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile in the fast variant")
    parser.add_argument("--workers", type=int, help="data-loader processes (default 8 on CUDA, 0 on CPU)")
    args = parser.parse_args()
    import torch

    from ssl_zoo.pretraining.base import METHOD_MODULES
    from ssl_zoo.runtime import Speed

    fast = Speed.fast(compile=args.compile, workers=args.workers)
    cuda = fast.device.type == "cuda"
    args.steps = args.steps or (30 if cuda else 3)
    args.batch_size = args.batch_size or (64 if cuda else 8)
    args.image_size = args.image_size or (224 if cuda else 64)
    args.arch = args.arch or ("resnet50" if cuda else "resnet18")
    methods = args.methods or list(METHOD_MODULES)
    print(machine_line())
    print(f"device {fast.device}, {args.arch}, {args.image_size}px, batch {args.batch_size}, {args.steps} timed "
          f"steps, compile={args.compile}" + ("" if cuda else "  (CPU: no bf16/channels_last; GPU target not measured)"))
    rows, missed = [], []
    with scratch_dir("ssl_zoo_bench_pretrain") as tmp, private_home(tmp / "home"):
        data = write_data(tmp / "images.npz", max(args.steps, 2) * args.batch_size, args.image_size)
        for name in methods:
            options = QUICK_OPTIONS.get(name, {}) if not cuda else {}
            if name == "spark" and not cuda:
                options = {"decoder_width": 256}
            fast_ips, fast_peak = images_per_second(name, data, fast, args, options, args.steps, tmp / "f", "device")
            plain_ips, plain_peak = images_per_second(name, data, fast.plain(), args, options, args.steps, tmp / "p")
            ratio = fast_ips / plain_ips if plain_ips else float("nan")
            rows.append((name, fast_ips, plain_ips, f"{ratio:.2f}x",
                         f"{fast_peak:,.0f}" if fast_peak else "-", f"{plain_peak:,.0f}" if plain_peak else "-"))
            if ratio < TARGET:
                missed.append(name)
            if cuda:
                torch.cuda.empty_cache()
    print_table(["method", "fast img/s", "plain img/s", "fast/plain", "fast peak MiB", "plain peak MiB"], rows)
    verdict = "ok" if not missed else f"TARGET MISSED for {', '.join(missed)}"
    if not cuda:
        verdict = "not measured (CPU run: no bf16/channels_last, and the 'device' views run on the CPU too)"
    print(f"speed-up of the fast loop over plain fp32 NCHW: target >= {TARGET:g}x on CUDA: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
