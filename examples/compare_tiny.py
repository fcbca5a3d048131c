"""A tiny comparison end to end, in a few minutes on a CPU.

Writes a synthetic 3-class dataset (64x64 PNG class folders: brightness levels with noise and a bright patch),
then compares models with ``ssl_zoo.compare`` over two label fractions and three trials, and prints the markdown
table. Results: ``OUT/results.csv``, ``OUT/results.md``, ``OUT/label_efficiency.png``, ``OUT/splits.json``.

    python examples/compare_tiny.py                                  # supervised-r18 (pulled on first use)
    python examples/compare_tiny.py --models moco-v2 supervised-r50 --protocol finetune
    python examples/compare_tiny.py --models path/to/model_folder --quick
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


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
    parser.add_argument("--out", default="compare_tiny_results", help="result folder")
    parser.add_argument("--protocol", choices=("probe", "finetune"), default="probe")
    parser.add_argument("--quick", action="store_true", help="fewer images and trials (a smoke run)")
    args = parser.parse_args(argv)

    import ssl_zoo

    out = Path(args.out)
    data = ssl_zoo.read_dataset(write_dataset(out / "data", per_class=12 if args.quick else 30))
    result = ssl_zoo.compare(args.models, data, out, protocol=args.protocol, label_fractions=(0.2, 1.0),
                             trials=2 if args.quick else 3, metric="accuracy", image_size=64, epochs=5, patience=3,
                             batch_size=16)
    print(result["files"]["markdown"].read_text())
    print(f"plot: {result['files']['plot']}")
    return result


if __name__ == "__main__":
    main()
