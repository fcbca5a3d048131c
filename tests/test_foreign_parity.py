"""SimCLR and BYOL converted from the loopback mirror compute what TensorFlow and Haiku compute.

The source frameworks run in subprocesses (TensorFlow imported next to torchvision crashes), once per session:
``tests/parity/tf_simclr.py`` builds SimCLR's forward pass from the checkpoint as ``tf.train.load_checkpoint``
reads it, ``tests/parity/haiku_byol.py`` feeds the pickle's online params/state to ``hk.nets.ResNet50``.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_zoo
from ssl_zoo.store import cache
from ssl_zoo.architectures.tf_same import TfSameConv2d, TfSameMaxPool2d
from ssl_zoo.converters.readers.tf_checkpoint import read_tf_checkpoint
from ssl_zoo.registry import get_entry

PARITY = Path(__file__).parent / "parity"
SIZES = ("224", "225", "256", "320")
EXACT_BOUND = 1e-4
# What the plain torch model (``exact=False``) misses at 224 on these fixtures; measured on the released checkpoints:
# 1.0e-2 - 1.7e-2 (SimCLR) and 7e-2 - 9e-2 (BYOL) with uncalibrated random weights. The realistic fixtures
# (calibrated batch norm) give 3e-2 - 7e-2 and ~1e-1; the bands keep both well away from the exact 1e-6.
PLAIN_BANDS = {"simclr-v1": (5e-3, 1.5e-1), "simclr-v2": (5e-3, 1.5e-1), "byol": (3e-2, 3e-1)}

# find_spec, not importorskip: importing haiku would bring JAX into the test process
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("tensorflow", "haiku", "dill")),
                                reason="parity needs the source frameworks (pip install ssl_zoo[tf,jax])")


def _run(script: str, *args: str) -> None:
    env_python = [sys.executable, str(PARITY / script), *args]
    done = subprocess.run(env_python, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="session")
def parity_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("parity") / "inputs.npz"
    np.savez(path, **{s: rng.random((1, 3, int(s), int(s)), dtype=np.float32) for s in SIZES})
    return path


@pytest.fixture(scope="session")
def references(fixtures, parity_inputs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Features (and TF's view of the variables) from TensorFlow and Haiku, computed once per session."""
    out = tmp_path_factory.mktemp("references")
    v1 = out / "simclr-v1"
    with zipfile.ZipFile(fixtures["simclr-v1"].path) as zf:
        zf.extractall(v1)
    v2_prefix = fixtures["simclr-v2"].path.with_suffix("")  # model.ckpt-250228
    _run("tf_simclr.py", str(parity_inputs), str(out / "savev2"), str(v1 / "ResNet50_1x" / "model.ckpt-225206"),
         str(out / "simclr-v1.npz"), str(v2_prefix), str(out / "simclr-v2.npz"))
    _run("haiku_byol.py", str(fixtures["byol"].path), str(parity_inputs), str(out / "byol.npz"))
    refs = {name: dict(np.load(out / f"{name}.npz")) for name in ("simclr-v1", "simclr-v2", "byol")}
    refs["savev2"] = {"prefix": out / "savev2"}
    return refs


def relative_error(actual: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(actual - reference).max() / np.abs(reference).max())


def _features(model: torch.nn.Module, inputs: Path, sizes: tuple[str, ...]) -> dict[str, np.ndarray]:
    data = np.load(inputs)
    with torch.no_grad():
        return {s: model(torch.from_numpy(data[s])).numpy() for s in sizes}


@pytest.mark.parametrize("name", ["simclr-v1", "simclr-v2", "byol"])
def test_converted_model_matches_the_source_framework(name: str, mirror, references, parity_inputs) -> None:
    exact_model, plain_model = ssl_zoo.load(name), ssl_zoo.load(name, exact=False)
    assert type(exact_model.maxpool) is TfSameMaxPool2d and type(plain_model.maxpool) is torch.nn.MaxPool2d
    assert (type(exact_model.layer2[0].conv2) is TfSameConv2d) == (name == "byol")  # SimCLR pads its convs itself
    assert list(exact_model.state_dict()) == list(plain_model.state_dict())  # torchvision keys either way
    exact = _features(exact_model, parity_inputs, SIZES)
    plain = _features(plain_model, parity_inputs, ("224", "225"))
    ref = {s: references[name][f"features_{s}"] for s in SIZES}

    errors = {s: relative_error(exact[s], ref[s]) for s in SIZES}
    assert max(errors.values()) <= EXACT_BOUND, errors
    low, high = PLAIN_BANDS[name]
    assert low <= relative_error(plain["224"], ref["224"]) <= high  # even: TF pads (0, 1) where torch pads (1, 1)
    assert relative_error(plain["225"], ref["225"]) <= EXACT_BOUND  # odd sizes: SAME is symmetric there

    # every file of a multi-file source was pulled; the card states what the plain model misses, measured
    # on these very weights at conversion
    downloads = {p.name for p in cache.downloads_dir(name).iterdir()}
    assert {s.filename for s in get_entry(name).sources} <= downloads
    folder = cache.model_dir(name)
    parity = json.loads((folder / "config.json").read_text())["ssl_zoo"]["parity"]
    assert low <= parity["plain_model_rel_diff_224"] <= high
    assert str(parity["plain_model_rel_diff_224"]) in (folder / "README.md").read_text()


def test_tensorflow_reads_the_fixture_as_ssl_zoo_does(fixtures, references) -> None:
    import hashlib

    ours = read_tf_checkpoint(fixtures["simclr-v2"].path)
    names, digests = references["simclr-v2"]["names"], references["simclr-v2"]["sha256"]
    assert sorted(ours) == list(names) and len(names) > 270
    mine = [hashlib.sha256(ours[str(n)].numpy().tobytes()).hexdigest() for n in names]
    assert mine == list(digests)


def test_ssl_zoo_reads_a_checkpoint_tensorflow_wrote(fixtures, references) -> None:
    ours = read_tf_checkpoint(f"{references['savev2']['prefix']}.index")
    original = read_tf_checkpoint(fixtures["simclr-v1"].path)
    assert sorted(ours) == ["base_model/conv2d_1/kernel", "base_model/conv2d_10/kernel",
                            "base_model/conv2d_11/kernel", "global_step"]
    assert all(torch.equal(ours[k], original[k]) for k in ours)
    assert ours["global_step"].dtype == torch.int64 and ours["global_step"].shape == ()
