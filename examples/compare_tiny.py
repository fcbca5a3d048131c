"""A tiny comparison end to end, in a few minutes on a CPU.

Writes a synthetic 3-class dataset (64x64 PNG class folders: brightness levels with noise and a bright patch),
then compares models with ``ssl_zoo.compare`` over two label fractions and three trials, and prints the markdown
table. Results (under ``--out``, default a new temporary folder): ``results.csv``, ``results.md``,
``label_efficiency.png``, ``splits.json``.

    python examples/compare_tiny.py                                  # supervised-r18 (pulled on first use)
    python examples/compare_tiny.py --models moco-v2 supervised-r50 --protocol finetune
    python examples/compare_tiny.py --models path/to/model_folder --quick
    python examples/compare_tiny.py --mirror /mnt/ssl_zoo_mirror     # offline, from `ssl-zoo mirror export`
    python examples/compare_tiny.py --from-file resnet18-f37072fd.pth # offline, a file you downloaded
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from _sources import add_source_options, prepare_models, run


def write_dataset(root: Path, per_class: int = 30, size: int = 64, seed: int = 0) -> Path:
    """Class folders ``dim``, ``mid``, ``bright`` of uint8 PNGs whose brightness sets the class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for level, name in enumerate(("dim", "mid", "bright")):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = 50 + 70 * level + rng.normal(0, 15, (size, size))
            y, x = rng.integers(0, size - 16, size=2)
            image[y:y + 16, x:x + 16] += 40
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return root


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["supervised-r18"], help="registry names or model folders")
    parser.add_argument("--out", help="result folder (default: a new temporary folder, printed at the end)")
    parser.add_argument("--protocol", choices=("probe", "finetune"), default="probe")
    parser.add_argument("--quick", action="store_true", help="fewer images and trials (a smoke run)")
    add_source_options(parser)
    args = parser.parse_args(argv)

    import ssl_zoo

    models = prepare_models(args, args.models)
    out = Path(args.out or tempfile.mkdtemp(prefix="ssl_zoo-compare_tiny-"))
    data = ssl_zoo.read_dataset(write_dataset(out / "data", per_class=12 if args.quick else 30))
    result = ssl_zoo.compare(models, data, out, protocol=args.protocol, label_fractions=(0.2, 1.0),
                             trials=2 if args.quick else 3, metric="accuracy", image_size=64, epochs=5, patience=3,
                             batch_size=16)
    print(result["files"]["markdown"].read_text())
    print(f"plot: {result['files']['plot']}\nall results: {out}")
    return result


if __name__ == "__main__":
    sys.exit(run(main))
