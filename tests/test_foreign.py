"""SimCLR (TF1) and BYOL (Haiku pickle): safe readers, name mapping, TF "SAME" padding, multi-file sources.

Numerical parity against TensorFlow and Haiku themselves is in ``test_foreign_parity.py``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_zoo
from ssl_zoo.store import cache
from ssl_zoo.architectures.tf_same import TfSameConv2d, TfSameMaxPool2d, apply_same_padding, tf_same_pads
from ssl_zoo.converters.convert import convert_state_dict
from ssl_zoo.converters.families.foreign import TfCreationOrder, tf_creation_order
from ssl_zoo.converters.readers import read_checkpoint
from ssl_zoo.converters.readers.haiku_pickle import read_haiku_pickle
from ssl_zoo.converters.readers.tf_checkpoint import read_tf_checkpoint
from ssl_zoo.converters.rules import Report
from ssl_zoo.errors import ConversionError, NotACheckpointError, UnsafePickleError
from ssl_zoo.registry import get_entry
from ssl_zoo.store.sources import user_files

from .fixtures.foreign import simclr_variables
from .fixtures.tf_bundle import write_bundle


def test_creation_order_puts_each_shortcut_before_its_block() -> None:
    order = tf_creation_order()
    assert len(order) == 53
    assert order[1] == ("layer1.0.downsample.0", "layer1.0.downsample.1")
    assert order[2][0] == "layer1.0.conv1" and order[10][0] == "layer1.2.conv3"
    assert order[11][0] == "layer2.0.downsample.0" and order[43][0] == "layer4.0.downsample.0"
    assert order[52] == ("layer4.2.conv3", "layer4.2.bn3")


def test_simclr_rule_maps_by_integer_suffix_and_drops_the_rest() -> None:
    trunk = {"conv1.weight": torch.randn(64, 3, 7, 7), "layer1.0.conv2.weight": torch.randn(64, 64, 3, 3)}
    names = {0: "conv1.weight", 3: "layer1.0.conv2.weight"}
    tensors = {f"base_model/conv2d{f'_{i}' if i else ''}/kernel": trunk[k].permute(2, 3, 1, 0) for i, k in names.items()}
    tensors.update({"base_model/conv2d_3/kernel/Momentum": torch.zeros(1), "global_step": torch.tensor(5),
                    "head_supervised/linear_layer/dense/bias": torch.zeros(3),
                    "ema_model/base_model/conv2d/kernel": torch.zeros(1)})
    report = Report()
    out = TfCreationOrder().apply(dict(sorted(tensors.items())), "fc", report)
    assert set(out) == set(trunk) and all(torch.equal(out[k], trunk[k]) for k in trunk)
    assert sum(report.dropped.values()) == 4 and any("ema_model" in why for why in report.dropped)


def test_simclr_rule_refuses_a_wider_or_sk_checkpoint() -> None:
    with pytest.raises(ConversionError, match="beyond ResNet-50"):
        TfCreationOrder().apply({"base_model/conv2d_53/kernel": torch.zeros(1, 1, 1, 1)}, "fc", Report())


def test_bundle_reader_accepts_every_form_of_the_source(tmp_path: Path, fixtures) -> None:
    v2 = fixtures["simclr-v2"].path
    folder = tmp_path / "ckpt"
    shutil.copytree(v2.parent, folder)
    prefix = folder / "model.ckpt-250228"
    reads = [read_tf_checkpoint(p) for p in (folder, f"{prefix}.index", f"{prefix}.data-00000-of-00001", prefix,
                                             folder / "checkpoint")]
    assert all(r.keys() == reads[0].keys() for r in reads)
    assert "base_model/conv2d_52/kernel" in reads[0] and reads[0]["global_step"].item() == 250228
    v1 = read_checkpoint(fixtures["simclr-v1"].path, "tf1-checkpoint")  # the zip, as downloaded
    assert len(v1) == 270 and v1["base_model/conv2d/kernel"].shape == (7, 7, 3, 64)


def test_bundle_reader_checks_every_crc(tmp_path: Path) -> None:
    prefix = tmp_path / "model.ckpt-1"
    write_bundle(prefix, {"a": np.arange(100, dtype=np.float32), "b": np.ones(3, np.float32)})
    data = Path(f"{prefix}.data-00000-of-00001")
    raw = bytearray(data.read_bytes())
    raw[17] ^= 0x01
    data.write_bytes(bytes(raw))
    with pytest.raises(NotACheckpointError, match="crc32c"):
        read_tf_checkpoint(prefix)
    index = Path(f"{prefix}.index")
    index.write_bytes(b"\0" * 64)
    with pytest.raises(NotACheckpointError, match="SSTable footer"):
        read_tf_checkpoint(index)


def test_haiku_pickle_reads_the_online_network_as_written(fixtures) -> None:
    flat = read_haiku_pickle(fixtures["byol"].path)
    stem = flat["experiment_state/online_params/res_net50/~/initial_conv/w"]
    expected = fixtures["byol"].expected["conv1.weight"]
    assert torch.equal(stem.permute(3, 2, 0, 1), expected)
    assert flat["step"] == 250 and flat["rng"].tolist() == [0, 42]
    assert "experiment_state/opt_state/1/mu/res_net50/~/initial_conv/w" in flat


class _RunsCode:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_haiku_pickle_refuses_code_before_anything_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"experiment_state": _RunsCode(str(marker))}, protocol=protocol))
    with pytest.raises(UnsafePickleError, match="posix.mkdir"):
        read_haiku_pickle(path)
    assert not marker.exists()


def test_haiku_pickle_refuses_a_module_outside_the_allow_list(tmp_path: Path) -> None:
    # an allowed helper asked for a forbidden module: dill._dill._import_module('os')
    payload = b"\x80\x02cdill._dill\n_import_module\nq\x00X\x02\x00\x00\x00osq\x01\x85q\x02Rq\x03."
    path = tmp_path / "sneaky.pkl"
    path.write_bytes(payload)
    with pytest.raises(UnsafePickleError, match="'os'"):
        read_haiku_pickle(path)


def test_same_padding_formula() -> None:
    assert tf_same_pads(112, 3, 2) == (0, 1) and tf_same_pads(224, 7, 2) == (2, 3)
    assert tf_same_pads(113, 3, 2) == (1, 1) and tf_same_pads(56, 3, 1) == (1, 1) and tf_same_pads(56, 1, 2) == (0, 0)


def test_same_padding_keeps_every_key_and_matches_explicit_padding() -> None:
    pool = torch.nn.MaxPool2d(3, 2, 1)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 7, 2, 3, bias=False), pool)
    keys = list(model.state_dict())
    apply_same_padding(model, ("0", "1"))
    assert isinstance(model[0], TfSameConv2d) and isinstance(model[1], TfSameMaxPool2d)
    assert list(model.state_dict()) == keys
    x = torch.randn(1, 3, 32, 32)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 3, 2, 3)), model[0].weight, stride=2)
    expected = torch.nn.functional.max_pool2d(torch.nn.functional.pad(y, (0, 1, 0, 1), value=-float("inf")), 3, 2)
    assert torch.equal(model(x), expected)
    with pytest.raises(ValueError, match="not a Conv2d"):
        apply_same_padding(model, ("nope",))


def test_convert_accepts_the_v2_folder_or_its_index(fixtures, tmp_path: Path) -> None:
    folder = tmp_path / "r50_1x_sk0"
    shutil.copytree(fixtures["simclr-v2"].path.parent, folder)
    entry = get_entry("simclr-v2")
    assert user_files(entry, folder / "model.ckpt-250228.index") == user_files(entry, folder)
    assert [p.name for _, p in user_files(entry, folder)] == [s.filename for s in entry.sources]
    converted = ssl_zoo.convert_file("simclr-v2", folder)
    downloads = sorted(p.name for p in cache.downloads_dir("simclr-v2").iterdir() if not p.name.startswith("."))
    assert downloads == sorted(p.name for p in folder.iterdir())
    sd = ssl_zoo.load_state_dict(converted)
    assert torch.equal(sd["layer4.2.bn3.running_var"], fixtures["simclr-v2"].expected["layer4.2.bn3.running_var"])


@pytest.mark.parametrize("name", ["byol", "simclr-v1"])
def test_foreign_files_convert_without_jax_haiku_dill_or_tensorflow(name: str, fixtures, monkeypatch) -> None:
    for blocked in ("jax", "haiku", "dill", "tensorflow"):
        monkeypatch.setitem(sys.modules, blocked, None)  # any import of them now raises ImportError
    entry = get_entry(name)
    tensors, report = convert_state_dict(read_checkpoint(fixtures[name].path, entry.format), entry)
    assert all(torch.equal(tensors[k], v) for k, v in fixtures[name].expected.items())
    assert report.dropped


def test_simclr_variables_fixture_round_trips(fixtures) -> None:
    # the fixture's TF names are the inverse of the converter's mapping (guards the fixture itself)
    trunk = fixtures["simclr-v1"].expected
    names = simclr_variables(trunk)
    assert len(names) == 53 * 5 and names["base_model/conv2d_1/kernel"].shape == (1, 1, 64, 256)
