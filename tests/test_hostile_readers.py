"""Hostile files against the readers: each ends in one typed line, never a crash, a huge allocation or a hang.

Every case is built here (a pickle assembled opcode by opcode, a crafted zip or tar) and read in a forked
child under a memory limit (``tests/hostile.py``), so a regression fails its test instead of the machine.
"""

from __future__ import annotations

import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from ssl_zoo.converters.convert import convert_state_dict
from ssl_zoo.converters.readers import read_checkpoint
from ssl_zoo.converters.readers.haiku_pickle import read_haiku_pickle
from ssl_zoo.converters.readers.sniff import TORCH_MAGIC_NUMBER
from ssl_zoo.converters.readers.tf_checkpoint import read_tf_checkpoint
from ssl_zoo.errors import ConversionError, NotACheckpointError
from ssl_zoo.registry import get_entry

from .fixtures.tf_bundle import write_bundle
from .hostile import (global_, long1, object_scalar_with_crafted_state, proto2, run_limited, set_central_size,
                      text, torch_zip)

TYPED = {"ResourceLimitError", "UnsafePickleError", "NotACheckpointError", "BundleError"}


def assert_typed(outcome, *words: str) -> None:
    """The child raised one of ssl_zoo's typed errors, on one line, containing ``words``."""
    assert outcome.how == "raised" and outcome.kind in TYPED, outcome
    assert "\n" not in outcome.message and all(w in outcome.message for w in words), outcome


def read_torch(path: Path):
    return lambda: read_checkpoint(path, "torch")


def read_haiku(path: Path):
    return lambda: read_haiku_pickle(path)


def as_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- memory safety -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["torch-zip", "haiku-pickle"])
def test_object_dtype_scalar_with_crafted_state_is_refused_before_building(tmp_path: Path, container: str) -> None:
    payload = object_scalar_with_crafted_state()
    if container == "torch-zip":
        outcome = run_limited(read_torch(torch_zip(tmp_path / "x.pth", payload)))
    else:
        outcome = run_limited(read_haiku(as_file(tmp_path, "x.pkl", payload)))
    assert_typed(outcome, "numpy.dtype('O8')", "not plain numeric data")


def test_plain_numpy_scalars_still_load(tmp_path: Path) -> None:
    path = tmp_path / "metrics.pth"
    torch.save({"best_acc1": np.float64(71.5), "epoch": np.int64(3)}, path)
    loaded = read_checkpoint(path)
    assert loaded["best_acc1"] == 71.5 and loaded["epoch"] == 3


# --- bounded resources: pickles ------------------------------------------------------------------------------

DEEP_KEY = proto2(pickle.EMPTY_DICT, pickle.EMPTY_TUPLE + pickle.TUPLE1 * 100_000, text("v"), pickle.SETITEM)
BYTEARRAY_3GB = proto2(global_("builtins", "bytearray"), long1(3_000_000_000), pickle.TUPLE1, pickle.REDUCE)
MEMO_2_28 = proto2(pickle.EMPTY_DICT, pickle.LONG_BINPUT + (1 << 28).to_bytes(4, "little"))
# ten references to the list below, thirty levels deep: 10**30 nodes for a tree walk
LAUGHS = proto2(pickle.EMPTY_LIST, pickle.BINPUT + b"\0",
                *[pickle.MARK + (pickle.BINGET + b"\0") * 10 + pickle.LIST + pickle.BINPUT + b"\0"] * 30)


@pytest.mark.parametrize("payload, limit", [(DEEP_KEY, "nesting depth"), (BYTEARRAY_3GB, "declared size"),
                                            (MEMO_2_28, "memo index"), (LAUGHS, "expanded size")],
                         ids=["deep-key", "bytearray-3GB", "memo-2**28", "billion-laughs"])
def test_hostile_pickles_are_refused_by_their_budget(tmp_path: Path, payload: bytes, limit: str) -> None:
    assert_typed(run_limited(read_torch(torch_zip(tmp_path / "x.pth", payload))), f"limit: {limit}")


@pytest.mark.parametrize("payload", [DEEP_KEY, MEMO_2_28, LAUGHS], ids=["deep-key", "memo-2**28", "laughs"])
def test_the_haiku_reader_has_the_same_budgets(tmp_path: Path, payload: bytes) -> None:
    assert_typed(run_limited(read_haiku(as_file(tmp_path, "x.pkl", payload))), "limit:")


def test_a_declared_string_length_is_checked_before_reading(tmp_path: Path) -> None:
    magic = pickle.dumps(TORCH_MAGIC_NUMBER, protocol=2)  # a legacy torch file: read as a stream
    huge = b"\x80\x02\x8d" + (1 << 40).to_bytes(8, "little") + b"abc."
    assert_typed(run_limited(read_torch(as_file(tmp_path, "x.pth", magic + huge))), "limit: declared size")


def test_a_zip_bomb_pickle_is_refused_before_inflating(tmp_path: Path) -> None:
    ops = b"N0" * (32 << 20)  # 64 MiB of NONE, POP: deflates a thousandfold, scans for minutes
    assert_typed(run_limited(read_torch(torch_zip(tmp_path / "x.pth", b"\x80\x02]" + ops + b".", compress=True))),
                 "limit: decompression ratio")


# --- one typed line: torch records, tensors ------------------------------------------------------------------


def test_a_flipped_byte_in_a_tensor_record_fails_its_crc(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"w": torch.arange(4096, dtype=torch.float32)}, path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        record = next(i for i in zf.infolist() if "/data/" in i.filename)
    data[record.header_offset + 30 + len(record.filename) + len(record.extra) + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(NotACheckpointError, match="CRC") as exc:
        read_checkpoint(path)
    assert "\n" not in str(exc.value) and record.filename in str(exc.value)


def resnet18_state() -> dict[str, torch.Tensor]:
    import torchvision

    return torchvision.models.resnet18().state_dict()


@pytest.mark.parametrize("odd", ["meta", "sparse", "quantized", "int64", "complex"])
def test_tensors_a_float32_cast_would_change_are_refused(odd: str) -> None:
    state = resnet18_state()
    weight = state["conv1.weight"]
    state["conv1.weight"] = {
        "meta": lambda: torch.empty(weight.shape, device="meta"),
        "sparse": lambda: weight.to_sparse(),
        "quantized": lambda: torch.quantize_per_tensor(weight, 0.1, 0, torch.qint8),
        "int64": lambda: (weight * 100).long(),
        "complex": lambda: weight.to(torch.complex64),
    }[odd]()
    with pytest.raises(ConversionError, match="conv1.weight") as exc:
        convert_state_dict(state, get_entry("supervised-r18"))
    assert "\n" not in str(exc.value)


# --- TF checkpoints and bundles --------------------------------------------------------------------------


@pytest.fixture
def tf_zip(tmp_path: Path) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    write_bundle(folder / "model.ckpt-1", {"w": np.arange(6000, dtype=np.float32).reshape(60, 100)})
    path = tmp_path / "ResNet50_1x.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, f"ResNet50_1x/{file.name}")
    return path


def test_tf_zip_reads(tf_zip: Path) -> None:
    assert read_tf_checkpoint(tf_zip)["w"].shape == (60, 100)


@pytest.mark.parametrize("member", ["model.ckpt-1.index", "model.ckpt-1.data-00000-of-00001"])
def test_tf_zip_whose_directory_claims_gigabytes_is_refused(tf_zip: Path, member: str) -> None:
    set_central_size(tf_zip, f"ResNet50_1x/{member}", 3_500_000_000)
    assert_typed(run_limited(lambda: read_tf_checkpoint(tf_zip)), "limit: decompression ratio")


def test_a_flipped_byte_in_the_simclr_zip_is_one_typed_line(tf_zip: Path) -> None:
    data = bytearray(tf_zip.read_bytes())
    with zipfile.ZipFile(tf_zip) as zf:
        info = zf.getinfo("ResNet50_1x/model.ckpt-1.data-00000-of-00001")
    data[info.header_offset + 30 + len(info.filename) + len(info.extra) + 500] ^= 0xFF
    tf_zip.write_bytes(bytes(data))
    with pytest.raises(NotACheckpointError, match="CRC") as exc:
        read_tf_checkpoint(tf_zip)
    assert "\n" not in str(exc.value)


def test_a_bundle_manifest_declaring_gigabytes_is_refused(tmp_path: Path) -> None:
    from ssl_zoo.sharing.bundles import MANIFEST, install_bundle
    from ssl_zoo.store import cache

    info = tarfile.TarInfo(MANIFEST)
    info.size = 3 << 30
    path = tmp_path / "bundle.tar"
    path.write_bytes(info.tobuf(format=tarfile.GNU_FORMAT) + b"{" + bytes(1 << 20))
    assert_typed(run_limited(lambda: install_bundle(path, progress=False)), "limit: manifest size")
    assert not list((cache.home() / "models").glob(".bundle-*"))

