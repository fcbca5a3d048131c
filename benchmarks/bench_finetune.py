"""Images/s of fine-tuning and of frozen feature extraction: the fast path against the plain loop, one run.

Both variants run the library's own loops (``evaluation.finetune.train_epoch`` and
``evaluation.features.compute_features``) on the same synthetic uint8 images; only the ``runtime.Speed`` differs:
``Speed.fast()`` (CUDA: bf16 autocast, channels_last, cuDNN benchmark, pinned memory, loader workers, optional
``--compile``) against ``Speed.fast().plain()`` (fp32, NCHW, no compile, same device and loader). On a CPU the
fast settings equal the plain ones, so the ratio is about 1 there. Target on a CUDA GPU: >= 2x.
"""

from __future__ import annotations

import copy

import numpy as np
from _common import interleaved, machine_line, make_parser, median, print_table

TARGET = 2.0


def synthetic_samples(n: int, size: int):
    from ssl_zoo.evaluation.data import Samples

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return Samples(images, (np.arange(n) % 10).astype(np.int64), "multiclass", tuple(map(str, range(10))))


def finetune_step_runner(model, samples, speed, batch_size: int):
    """A callable that runs one training epoch over ``samples`` with ``speed``."""
    import torch

    from ssl_zoo.evaluation.finetune import loss_function, train_loader, train_epoch
    from ssl_zoo.evaluation.preprocess import SizedTransform

    transform = SizedTransform(samples.items.shape[1], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    net = speed.prepare(copy.deepcopy(model))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-4)
    loader = train_loader(samples, transform, speed, batch_size, seed=0)

    def run() -> None:
        train_epoch(net, loader, optimizer, loss_function("multiclass"), speed)
        if speed.device.type == "cuda":
            torch.cuda.synchronize()

    return run


def feature_runner(model, samples, speed, batch_size: int):
    from ssl_zoo.evaluation.features import compute_features
    from ssl_zoo.evaluation.preprocess import SizedTransform

    transform = SizedTransform(samples.items.shape[1], (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    net = copy.deepcopy(model)
    return lambda: compute_features(net, samples, transform, speed=speed, batch_size=batch_size, progress=False)


def main() -> None:
    parser = make_parser(__doc__.splitlines()[0], default_repeat=3)
    parser.add_argument("--arch", default="resnet50", help="timm architecture (default resnet50)")
    parser.add_argument("--image-size", type=int, help="default 224 on CUDA, 96 on CPU")
    parser.add_argument("--images", type=int, help="images per timed pass (default 512 on CUDA, 64 on CPU)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compile", action="store_true", help="torch.compile in the fast variant")
    args = parser.parse_args()

    import timm
    import torch

    from ssl_zoo.runtime import Speed

    fast = Speed.fast(compile=args.compile)
    cuda = fast.device.type == "cuda"
    size = args.image_size or (224 if cuda else 96)
    n = args.images or ((512 if cuda else 64) // (4 if args.quick else 1))
    repeat = 1 if args.quick else args.repeat
    samples = synthetic_samples(n, size)
    model = timm.create_model(args.arch, num_classes=10)
    print(machine_line())
    print(f"device {fast.device}{' ' + torch.cuda.get_device_name() if cuda else ''}; {args.arch}, {n} images of "
          f"{size}x{size}, batch {args.batch_size}; {repeat} round(s) after 1 warm-up each")
    speeds = {"fast": fast, "plain": fast.plain()}
    rows, ratios = [], {}
    for job, make in (("fine-tune", finetune_step_runner), ("features", feature_runner)):
        times = interleaved({k: make(model, samples, s, args.batch_size) for k, s in speeds.items()}, repeat)
        rates = {k: n / median(v) for k, v in times.items()}
        rows += [[f"{job}, {k}", rates[k]] for k in speeds]
        ratios[job] = rates["fast"] / rates["plain"]
    print_table(["variant", "images/s"], rows)
    for job, ratio in ratios.items():
        verdict = ("ok" if ratio >= TARGET else "TARGET MISSED") if cuda else "(CPU: fast = plain, for information)"
        print(f"{job} fast / plain: {ratio:.2f}x (target on CUDA >= {TARGET:g}x) {verdict}")


if __name__ == "__main__":
    main()
