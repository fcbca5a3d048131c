"""The model folder writer: atomic replacement, read-back check, and verification of a written folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_zoo import errors
from ssl_zoo.modelfolder.files import _differing_tensors, is_complete, read_weights, verify_folder, write_folder

TENSORS = {"a.weight": torch.randn(3, 4), "b.num_batches_tracked": torch.tensor(7)}


def texts(digest: str) -> tuple[dict, str]:
    return {"architecture": "resnet50", "ssl_zoo": {"weights_sha256": digest}}, "---\nlicense: mit\n---\n"


def test_write_then_read_and_verify(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", TENSORS, {"format": "pt"}, texts)
    assert is_complete(folder) and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert all(torch.equal(read_weights(folder)[k], v) for k, v in TENSORS.items())
    assert len(verify_folder(folder)) == 64


def test_rewrite_replaces_the_whole_folder(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", TENSORS, {}, texts)
    (folder / "stale.txt").write_text("from an older version")
    write_folder(folder, {"a.weight": torch.zeros(2)}, {}, texts)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"] and not (folder / "stale.txt").exists()
    assert list(read_weights(folder)) == ["a.weight"]


def test_read_back_check_sees_a_changed_byte_and_a_missing_key(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", TENSORS, {}, texts)
    path = folder / "model.safetensors"
    assert _differing_tensors(path, TENSORS) == []
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert len(_differing_tensors(path, TENSORS)) == 1
    assert _differing_tensors(path, {**TENSORS, "c": torch.zeros(1)})[0] == "c"
    with pytest.raises(errors.ModelFolderError, match="ssl-zoo pull NAME --force"):
        verify_folder(folder)


def test_incomplete_folder_is_reported(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "m", TENSORS, {}, texts)
    (folder / "config.json").unlink()
    with pytest.raises(errors.ModelFolderError, match="missing"):
        verify_folder(folder)
