"""How long ``ssl_zoo.load("moco-v2")`` takes from a warm cache, next to the code people would write themselves.

Variants, timed round robin in one process on one full-size (ResNet-50) moco-v2 file:

    ssl_zoo.load           ssl_zoo.load("moco-v2"), the model folder already converted
    ssl_zoo.load + touch   the same, then every page of the (memory-mapped) weights read once
    floor                  safetensors load_file + timm.create_model("resnet50", num_classes=0) + load_state_dict
    floor-meta             the same, the model built on the meta device + load_state_dict(assign=True)
    usual torch.load       torch.load(upstream .pth.tar, weights_only=True) + prefix loop + torchvision resnet50()

Target: ssl_zoo.load <= 1.2x floor (also checked with the pages touched). The other ratios are for information.

Usage (from the repository root)::

    python benchmarks/bench_load.py [--repeat N] [--quick]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import _common  # noqa: F401  (puts the repository root on sys.path)
from _common import (interleaved, machine_line, make_parser, median, print_table, private_home, ratio_line,
                     scratch_dir)

import torch
from torch import nn

TARGET_VS_FLOOR = 1.2
NAME = "moco-v2"
QUERY_PREFIX = "module.encoder_q."


def prepare(workdir: Path) -> tuple[Path, Path]:
    """Write a full-size moco-v2 fixture and convert it once; return (upstream file, model.safetensors)."""
    import ssl_zoo
    from tests.fixtures import build

    fixture = build(NAME, workdir / "upstream", full_size=True)
    folder = ssl_zoo.convert_file(NAME, fixture.path)
    return fixture.path, folder / "model.safetensors"


def load_ssl_zoo() -> nn.Module:
    """The library path."""
    import ssl_zoo

    return ssl_zoo.load(NAME, progress=False)


def load_ssl_zoo_touched() -> nn.Module:
    """The library path, then one read per 4 KiB page of every weight.

    ``ssl_zoo.load`` (like floor-meta) hands out tensors backed by the memory-mapped file: their pages are read
    on first use. This variant charges that deferred cost to the load.
    """
    model = load_ssl_zoo()
    for tensor in model.state_dict().values():
        tensor.reshape(-1)[::1024].sum()
    return model


def load_floor(weights: Path) -> nn.Module:
    """The floor: read the converted file, build the empty timm model, copy the tensors in (strict)."""
    import timm
    from safetensors.torch import load_file

    state = load_file(str(weights))
    model = timm.create_model("resnet50", num_classes=0)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_floor_meta(weights: Path) -> nn.Module:
    """The floor without random initialisation: a meta-device model whose parameters become the loaded tensors."""
    import timm
    from safetensors.torch import load_file

    state = load_file(str(weights))
    with torch.device("meta"):
        model = timm.create_model("resnet50", num_classes=0)
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval()


def load_usual(upstream: Path) -> nn.Module:
    """What a MoCo README tells people to write today, on the original checkpoint."""
    import torchvision

    checkpoint = torch.load(upstream, map_location="cpu", weights_only=True)
    state = {}
    for key, value in checkpoint["state_dict"].items():
        if key.startswith(QUERY_PREFIX) and not key.startswith(QUERY_PREFIX + "fc."):
            state[key[len(QUERY_PREFIX):]] = value
    model = torchvision.models.resnet50()
    model.fc = nn.Identity()
    model.load_state_dict(state, strict=True)
    return model.eval()


def check_same_weights(models: dict[str, nn.Module]) -> None:
    """Fail loudly if the variants do not load the same tensors: a fast wrong benchmark is worthless."""
    reference_name, reference = next(iter(models.items()))
    expected = reference.state_dict()
    for name, model in models.items():
        got = model.state_dict()
        differing = [k for k in expected if not torch.equal(expected[k], got[k])]
        if got.keys() != expected.keys() or differing:
            raise SystemExit(f"{name} loads different weights than {reference_name}: {differing[:3]}")


def report(times: dict[str, list[float]]) -> bool:
    """Print the table and the ratios; return whether the target was met."""
    floor = median(times["floor"])
    rows = [(name, median(t) * 1e3, min(t) * 1e3, f"{median(t) / floor:.2f}") for name, t in times.items()]
    print_table(("variant", "median ms", "min ms", "vs floor"), rows)
    print()
    met = ratio_line("ssl_zoo.load / floor", median(times["ssl_zoo.load"]) / floor, TARGET_VS_FLOOR)
    ratio_line("ssl_zoo.load + touch / floor", median(times["ssl_zoo.load + touch"]) / floor, TARGET_VS_FLOOR)
    ratio_line("ssl_zoo.load / floor-meta", median(times["ssl_zoo.load"]) / median(times["floor-meta"]))
    ratio_line("usual torch.load / ssl_zoo.load", median(times["usual torch.load"]) / median(times["ssl_zoo.load"]))
    return met


def variants(upstream: Path, weights: Path) -> dict[str, Callable[[], nn.Module]]:
    """The timed callables, in the order they run in each round."""
    return {
        "ssl_zoo.load": load_ssl_zoo,
        "ssl_zoo.load + touch": load_ssl_zoo_touched,
        "floor": lambda: load_floor(weights),
        "floor-meta": lambda: load_floor_meta(weights),
        "usual torch.load": lambda: load_usual(upstream),
    }


def main(argv: list[str] | None = None) -> int:
    args = make_parser(__doc__.splitlines()[0], default_repeat=15).parse_args(argv)
    repeat = max(1, min(args.repeat, 3) if args.quick else args.repeat)
    with scratch_dir("ssl_zoo_bench_load_") as workdir, private_home(workdir / "home"):
        upstream, weights = prepare(workdir)
        print(f"bench_load: {machine_line()}")
        print(f"upstream file {upstream.stat().st_size / 2**20:.0f} MiB, model.safetensors "
              f"{weights.stat().st_size / 2**20:.0f} MiB, {repeat} rounds after 1 warm-up each\n")
        timed = variants(upstream, weights)
        check_same_weights({name: fn() for name, fn in timed.items()})
        report(interleaved(timed, repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
