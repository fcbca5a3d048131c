"""Read TensorFlow 1 name-based checkpoints (the tensor_bundle format) without TensorFlow.

A checkpoint with prefix ``P`` is ``P.index`` (a LevelDB-style SSTable mapping each variable name to a
``BundleEntryProto``: dtype, shape, shard, offset, size, crc32c) and ``P.data-SSSSS-of-NNNNN`` (raw
little-endian tensor bytes). TensorFlow writes the index uncompressed, so the whole format is a few varints
and a hand-decoded protobuf; every block and every tensor is checked against its crc32c.

TensorFlow is never imported: in this process it crashes when torchvision is imported too, and a reader
should not need a 500 MB framework. The source may be the released zip (SimCLR v1), a folder, or any file of
the checkpoint (SimCLR v2 downloads ``P.index``, ``P.data-…``, ``P.meta``, ``checkpoint``, ``graph.pbtxt``).
"""

from __future__ import annotations

import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch

from ...errors import NotACheckpointError, ResourceLimitError
from .zip_limits import check_zip_sizes

__all__ = ["BundleEntry", "masked_crc32c", "read_bundle", "read_tf_checkpoint"]

_MAGIC: Final = 0xDB4775248B80FB57
_FOOTER_SIZE: Final = 48
_TRAILER_SIZE: Final = 5  # compression type byte + masked crc32c of block and type
# tensorflow/core/framework/types.proto DataType → numpy dtype (little-endian; header says so)
_DTYPES: Final[dict[int, str]] = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?",
                                   17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8"}
_DATA_RE: Final = re.compile(r"^(?P<prefix>.+)\.data-\d{5}-of-\d{5}$")
_CORRUPT: Final = "{where}: {what}: the checkpoint is damaged or not a TF1 checkpoint; delete it and pull again"
MAX_INDEX: Final = 64 << 20  # an index holds names, shapes and offsets: kilobytes even for large models


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives: ``BundleEntryProto`` decoded."""

    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int
    sliced: bool


def masked_crc32c(data: bytes | memoryview) -> int:
    """TensorFlow's masked crc32c (rotated and offset so that a crc of crc-bearing data stays well spread)."""
    import google_crc32c

    # its C code refuses memoryviews but takes a numpy view of the same bytes (no copy of a 100 MB shard)
    crc = google_crc32c.value(np.frombuffer(data, dtype=np.uint8))
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tf_checkpoint(path: Path | str) -> dict[str, torch.Tensor]:
    """Every variable of a TF1 checkpoint as a CPU tensor, by its TensorFlow name.

    Args:
        path: The released zip, a folder holding one checkpoint, its ``.index`` or ``.data-…`` file, or its
            prefix (``…/model.ckpt-250228``).

    Returns:
        ``{name: tensor}`` for every variable (optimizer slots and ``global_step`` included), in the file's
        (lexicographic) order, with TensorFlow's shapes (convolution kernels HWIO).

    Raises:
        NotACheckpointError: If no checkpoint is found, a crc32c does not match, or the file is malformed.
        OSError: If a file cannot be read.

    Example:
        >>> sd = read_tf_checkpoint(Path("ResNet50_1x.zip"))  # doctest: +SKIP
        >>> sd["base_model/conv2d/kernel"].shape
        torch.Size([7, 7, 3, 64])
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                check_zip_sizes(zf, path)
                return _read_checked(*_zip_members(zf), path)
        except (zipfile.BadZipFile, EOFError) as exc:  # a member fails its CRC-32, or the zip is cut short
            raise NotACheckpointError(_CORRUPT.format(where=path, what=str(exc).splitlines()[0])) from None
    prefix = _find_prefix(path)
    shards = lambda shard, count: _read_file(Path(f"{prefix}.data-{shard:05d}-of-{count:05d}"))  # noqa: E731
    index = Path(f"{prefix}.index")
    _check_index_size(index.stat().st_size, index)
    return _read_checked(index.read_bytes(), shards, path)


def _check_index_size(size: int, where: object) -> None:
    if size > MAX_INDEX:
        raise ResourceLimitError(f"{where}: the .index declares {size:,} bytes, more than the {MAX_INDEX:,} an "
                                 "index needs (limit: index size); the checkpoint is damaged or hostile")


def _read_checked(index: bytes, shards: Callable[[int, int], bytearray], path: Path) -> dict[str, torch.Tensor]:
    try:
        arrays = read_bundle(index, shards, str(path))
    except NotACheckpointError:
        raise
    except (ValueError, IndexError, struct.error) as exc:  # a malformed varint, protobuf or block
        raise NotACheckpointError(_CORRUPT.format(where=path, what=f"malformed index ({exc})")) from None
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


def read_bundle(index: bytes, shard_bytes: Callable[[int, int], bytearray],
                where: str = "checkpoint") -> dict[str, np.ndarray]:
    """Decode a bundle from its ``.index`` bytes and a ``shard_bytes(shard, num_shards) -> buffer`` callable."""
    entries = dict(_table_entries(index, where))
    header = entries.pop("", None)
    if header is None:
        raise NotACheckpointError(_CORRUPT.format(where=where, what="the index has no bundle header"))
    num_shards, big_endian = _header(header)
    if big_endian:
        raise NotACheckpointError(f"{where}: big-endian checkpoint; re-save it on a little-endian machine")
    bundle = {name: _entry(value) for name, value in entries.items()}
    buffers = {shard: shard_bytes(shard, num_shards) for shard in sorted({e.shard for e in bundle.values()})}
    return {name: _tensor(entry, buffers[entry.shard], f"{where}:{name}") for name, entry in bundle.items()}


# --- locating the files ------------------------------------------------------------------------------------------


def _find_prefix(path: Path) -> str:
    if path.is_dir():
        return _prefix_in_folder(path)
    if path.suffix == ".index":
        return str(path)[: -len(".index")]
    match = _DATA_RE.match(str(path))
    if match:
        return match["prefix"]
    if Path(f"{path}.index").is_file():
        return str(path)
    if path.is_file():  # another file of the set (checkpoint, graph.pbtxt, .meta): look beside it
        return _prefix_in_folder(path.parent)
    raise NotACheckpointError(f"{path}: no TF checkpoint there; give the .zip, the folder, or the .index file")


def _prefix_in_folder(folder: Path) -> str:
    indexes = sorted(folder.glob("*.index"))
    state = folder / "checkpoint"
    named = _state_file_prefix(state.read_text(errors="replace")) if state.is_file() else None
    if named and Path(folder / f"{named}.index") in indexes:
        return str(folder / named)
    if len(indexes) != 1:
        found = ", ".join(p.name for p in indexes) or "none"
        raise NotACheckpointError(f"{folder}: expected one *.index checkpoint, found {found}; give the .index file")
    return str(indexes[0])[: -len(".index")]


def _state_file_prefix(text: str) -> str | None:
    """The prefix that TF's ``checkpoint`` state file names (``model_checkpoint_path: "…"``), if any."""
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text, re.MULTILINE)
    return Path(match[1]).name if match else None


def _zip_members(zf: zipfile.ZipFile) -> tuple[bytes, Callable[[int, int], bytearray]]:
    names = zf.namelist()
    # the release also holds a TF-Hub export (hub/variables/variables.index) with the same weights
    indexes = [n for n in names if n.endswith(".index") and "/variables/" not in f"/{n}"]
    if len(indexes) > 1:  # several checkpoints: take the one a ``checkpoint`` state file names
        states = {n.rpartition("/")[0]: zf.read(n).decode(errors="replace") for n in names if n.endswith("checkpoint")}
        picked = [i for i in indexes
                  if _state_file_prefix(states.get(i.rpartition("/")[0], "")) == Path(i).name[: -len(".index")]]
        indexes = picked or indexes
    if len(indexes) != 1:
        raise NotACheckpointError(f"{zf.filename}: expected one TF checkpoint (*.index) in the zip, found "
                                  f"{len(indexes)}; unzip it and give the .index file you want")
    prefix = indexes[0][: -len(".index")]
    _check_index_size(zf.getinfo(indexes[0]).file_size, f"{zf.filename}:{indexes[0]}")
    return zf.read(indexes[0]), lambda shard, count: _read_member(zf, f"{prefix}.data-{shard:05d}-of-{count:05d}")


def _read_member(zf: zipfile.ZipFile, name: str) -> bytearray:
    # straight into one writable buffer: zf.read() would hold a second copy of the shard
    try:
        buffer = bytearray(zf.getinfo(name).file_size)
    except KeyError:
        raise NotACheckpointError(f"{zf.filename}: {name} is missing from the zip; download it again") from None
    view, filled = memoryview(buffer), 0
    with zf.open(name) as fh:
        while filled < len(buffer) and (count := fh.readinto(view[filled:])):
            filled += count
    return buffer


def _read_file(path: Path) -> bytearray:
    if not path.is_file():
        raise NotACheckpointError(f"{path} is missing: a TF checkpoint needs its .data file beside the .index")
    buffer = bytearray(path.stat().st_size)  # writable, so tensors can share it without a copy
    with open(path, "rb") as fh:
        fh.readinto(buffer)
    return buffer


# --- the SSTable -------------------------------------------------------------------------------------------------


def _table_entries(index: bytes, where: str):
    if len(index) < _FOOTER_SIZE or struct.unpack_from("<Q", index, len(index) - 8)[0] != _MAGIC:
        raise NotACheckpointError(_CORRUPT.format(where=where, what="the .index has no SSTable footer"))
    pos = len(index) - _FOOTER_SIZE
    _, pos = _varint(index, pos)  # metaindex handle: TF writes no filters, nothing to read there
    _, pos = _varint(index, pos)
    offset, pos = _varint(index, pos)
    size, _ = _varint(index, pos)
    for _, handle in _block_entries(_block(index, offset, size, where)):
        data_offset, p = _varint(handle, 0)
        data_size, _ = _varint(handle, p)
        yield from _block_entries(_block(index, data_offset, data_size, where))


def _block(index: bytes, offset: int, size: int, where: str) -> bytes:
    block = index[offset: offset + size + 1]
    if len(block) != size + 1 or block[-1] != 0:
        raise NotACheckpointError(_CORRUPT.format(where=where, what="an index block is cut short or compressed"))
    (crc,) = struct.unpack_from("<I", index, offset + size + 1)
    if masked_crc32c(block) != crc:
        raise NotACheckpointError(_CORRUPT.format(where=where, what="an index block fails its crc32c"))
    return block[:-1]


def _block_entries(block: bytes):
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end, pos, key = len(block) - 4 - 4 * restarts, 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos: pos + unshared]
        pos += unshared
        yield key.decode(), block[pos: pos + length]
        pos += length


# --- protobuf, decoded by hand (three small messages) -------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(message: bytes):
    """(field number, value) pairs; varints as int, fixed32/64 as int, length-delimited as bytes."""
    pos = 0
    while pos < len(message):
        tag, pos = _varint(message, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(message, pos)
        elif wire == 2:
            length, pos = _varint(message, pos)
            value, pos = message[pos: pos + length], pos + length
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = int.from_bytes(message[pos: pos + width], "little"), pos + width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, value


def _header(message: bytes) -> tuple[int, bool]:
    fields = dict(_fields(message))
    return fields.get(1, 1), fields.get(2, 0) == 1


def _entry(message: bytes) -> BundleEntry:
    fields: dict[int, object] = {}
    sliced = False
    for number, value in _fields(message):
        sliced |= number == 7
        fields[number] = value
    shape = tuple(dict(_fields(dim)).get(1, 0) for n, dim in _fields(fields.get(2, b"")) if n == 2)
    return BundleEntry(fields.get(1, 0), shape, fields.get(3, 0), fields.get(4, 0), fields.get(5, 0),
                       fields.get(6, 0), sliced)


def _tensor(entry: BundleEntry, buffer: bytearray, where: str) -> np.ndarray:
    if entry.sliced:
        raise NotACheckpointError(f"{where}: a partitioned variable; ssl_zoo reads whole variables only")
    if entry.dtype not in _DTYPES:
        raise NotACheckpointError(f"{where}: TF dtype {entry.dtype} is not a numeric type ssl_zoo reads")
    view = memoryview(buffer)[entry.offset: entry.offset + entry.size]
    if len(view) != entry.size:
        raise NotACheckpointError(_CORRUPT.format(where=where, what="the .data file is cut short"))
    if masked_crc32c(view) != entry.crc32c:
        raise NotACheckpointError(_CORRUPT.format(where=where, what="tensor bytes fail their crc32c"))
    array = np.frombuffer(view, dtype=_DTYPES[entry.dtype])
    return array.astype(array.dtype.newbyteorder("="), copy=False).reshape(entry.shape)
