"""Shared pieces of the evaluation tests: a real ResNet-18 model folder and tiny learnable datasets.

The model folder is converted once per session from the ``supervised-r18`` fixture file. The fixture's weights
are unscaled random values whose activations overflow, so a copy of the folder gets timm's seeded initialisation
instead: a sane random network, the usual baseline of transfer studies.

The datasets are 32x32 images whose class is set by brightness, so a linear probe or a
short fine-tune on any reasonable features separates them; chance is 0.5 (binary) or 1/3 (three classes).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ssl_zoo.evaluation.data import Samples
from ssl_zoo.registry import all_entries

SIZE = 32


@pytest.fixture(scope="session")
def r18_folder(tmp_path_factory) -> Path:
    """A ResNet-18 model folder: the ``supervised-r18`` fixture converted, then given timm's initialisation."""
    import ssl_zoo

    from .fixtures import build

    home = tmp_path_factory.mktemp("eval_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_ZOO_HOME", str(home))
        entry = all_entries()["supervised-r18"]  # fixture bytes cannot match torchvision's pinned prefix
        sources = tuple(dataclasses.replace(s, sha256=None, sha256_prefix=None) for s in entry.sources)
        mp.setitem(all_entries(), "supervised-r18", dataclasses.replace(entry, sources=sources))
        converted = ssl_zoo.convert_file("supervised-r18", build("supervised-r18", home / "upstream").path)
    return reinitialised_copy(converted, home / "r18-init")


def reinitialised_copy(folder: Path, dest: Path, seed: int = 0) -> Path:
    """``folder`` copied to ``dest`` with ``model.safetensors`` replaced by timm's initialisation seeded ``seed``."""
    import shutil

    import timm
    import torch
    from safetensors.torch import save_file

    shutil.copytree(folder, dest)
    torch.manual_seed(seed)
    weights = timm.create_model("resnet18", num_classes=0).state_dict()
    tensors = {k: v.contiguous() for k, v in weights.items()}
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    _record_weights(dest)
    return dest


def _record_weights(folder: Path) -> None:
    """Make ``config.json`` describe the new weights, as every writer does (loads check size and header)."""
    import json

    from ssl_zoo.store.hashes import sha256_file

    config = json.loads((folder / "config.json").read_text())
    weights = folder / "model.safetensors"
    config["ssl_zoo"].update(weights_size=weights.stat().st_size, weights_sha256=sha256_file(weights))
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def brightness_images(labels: np.ndarray, seed: int, size: int = SIZE) -> np.ndarray:
    """uint8 (N, size, size) images: base brightness 50 + 80 * label, plus noise and a random bright patch."""
    rng = np.random.default_rng(seed)
    base = 50.0 + 80.0 * labels[:, None, None]
    images = base + rng.normal(0, 12, size=(len(labels), size, size))
    for image in images:
        y, x = rng.integers(0, size - 8, size=2)
        image[y:y + 8, x:x + 8] += 40
    return np.clip(images, 0, 255).astype(np.uint8)


def learnable_samples(n: int = 60, classes: int = 2, seed: int = 0) -> Samples:
    """``n`` balanced images of ``classes`` brightness levels (binary for 2, multiclass above)."""
    labels = np.arange(n) % classes
    task = "binary" if classes == 2 else "multiclass"
    return Samples(brightness_images(labels, seed), labels.astype(np.int64), task,
                   tuple(str(c) for c in range(classes)))


def test_learnable_samples_are_balanced_and_separable():
    samples = learnable_samples(30, classes=3)
    assert np.bincount(samples.targets).tolist() == [10, 10, 10]
    means = [samples.items[samples.targets == c].mean() for c in range(3)]
    assert means == sorted(means) and means[1] - means[0] > 50


def test_public_functions_resolve_lazily():
    import ssl_zoo
    from ssl_zoo.evaluation.finetune import finetune
    from ssl_zoo.evaluation.probe import linear_probe

    assert ssl_zoo.finetune is finetune and ssl_zoo.linear_probe is linear_probe
    assert callable(ssl_zoo.compare) and callable(ssl_zoo.read_dataset)


def test_default_preprocessing_is_the_entry_transform(r18_folder):
    import ssl_zoo
    import torch

    from ssl_zoo.evaluation.preprocess import SizedTransform, build_transform

    model = ssl_zoo.load(r18_folder)
    image = brightness_images(np.array([1]), seed=0, size=40)[0]
    default = build_transform(str(r18_folder), model.pretrained_cfg)
    assert torch.equal(default(image), ssl_zoo.transforms(r18_folder)(image))
    sized = build_transform(str(r18_folder), model.pretrained_cfg, image_size=16)
    assert isinstance(sized, SizedTransform) and sized(image).shape == (3, 16, 16)
