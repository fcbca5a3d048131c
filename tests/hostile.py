"""Helpers for hostile-input tests: run a step in a forked child under a memory limit and a deadline, and
assemble pickles opcode by opcode.

A regression that allocates gigabytes then fails inside its child (MemoryError under ``RLIMIT_AS``) instead of
exhausting the machine; one that crashes shows as a signal, one that never ends as a timeout.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import select
import signal
import struct
import time
import traceback
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

HEADROOM = 768 << 20  # bytes of address space the child may add to what the parent already maps


class Outcome(NamedTuple):
    """How a child ended: ``"ok"``, ``"raised"``, ``"signal N"`` or ``"timeout"``; with the error's type and text."""

    how: str
    kind: str = ""
    message: str = ""


def _address_space() -> int:
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    return kib << 10


def _child(step: Callable[[], Any], write_fd: int) -> None:
    limit = _address_space() + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        step()
        report = "ok\0\0"
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which asserts on it
        report = f"raised\0{type(exc).__name__}\0{exc}"
        if os.environ.get("HOSTILE_DEBUG"):
            traceback.print_exc()
    os.write(write_fd, report.encode(errors="replace")[:60_000])


def run_limited(step: Callable[[], Any], timeout: float = 20.0) -> Outcome:
    """Run ``step()`` in a forked child under a memory limit; how it ended, never more than ``timeout`` s.

    Example:
        >>> run_limited(lambda: bytearray(4 << 30)).kind
        'MemoryError'
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_fd)
        try:
            _child(step, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    data = _read_until(read_fd, time.monotonic() + timeout)
    os.close(read_fd)
    status = _reap(pid, time.monotonic() + 2)
    if status is None:
        return Outcome("timeout")
    if os.WIFSIGNALED(status):
        return Outcome(f"signal {os.WTERMSIG(status)}")
    how, kind, message = (data.decode(errors="replace").split("\0", 2) + ["", "", ""])[:3]
    return Outcome(how or "no report", kind, message)


def _read_until(fd: int, deadline: float) -> bytes:
    chunks = []
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
    return b"".join(chunks)


def _reap(pid: int, deadline: float) -> int | None:
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


# --- pickles, opcode by opcode -----------------------------------------------------------------------------


def proto2(*ops: bytes) -> bytes:
    """``PROTO 2``, the opcodes, ``STOP``."""
    return b"\x80\x02" + b"".join(ops) + pickle.STOP


def global_(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def text(value: str) -> bytes:
    data = value.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def raw_bytes(value: bytes) -> bytes:
    return pickle.SHORT_BINBYTES + bytes([len(value)]) + value


def long1(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return pickle.LONG1 + bytes([len(data)]) + data


def binint(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def object_scalar_with_crafted_state() -> bytes:
    """numpy ``scalar(dtype('O8') + BUILD(flags=0), 8 bytes)``: numpy would read the bytes as a pointer."""
    crafted_state = (pickle.MARK + binint(3) + text("|") + pickle.NONE * 3 + binint(-1) + binint(-1) + binint(0)
                     + pickle.TUPLE)
    dtype = (global_("numpy", "dtype") + text("O8") + pickle.NEWFALSE + pickle.NEWTRUE + pickle.TUPLE3
             + pickle.REDUCE + crafted_state + pickle.BUILD)
    return proto2(global_("numpy.core.multiarray", "scalar"), dtype, raw_bytes(b"\x41" * 8), pickle.TUPLE2,
                  pickle.REDUCE)


def torch_zip(path: Path, data_pkl: bytes, compress: bool = False) -> Path:
    """A ``torch.save`` zip whose ``data.pkl`` is replaced by ``data_pkl``."""
    saved = io.BytesIO()
    torch.save({}, saved)
    with zipfile.ZipFile(io.BytesIO(saved.getvalue())) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            body = data_pkl if info.filename.endswith("/data.pkl") else src.read(info)
            out.writestr(info.filename, body, zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED)
    return path


def set_central_size(path: Path, member: str, size: int) -> None:
    """Make the zip's central directory claim ``size`` uncompressed bytes for ``member`` (nothing else changes)."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02")
    while True:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if data[at + 46: at + 46 + name_len].decode() == member:
            struct.pack_into("<I", data, at + 24, size)
            path.write_bytes(bytes(data))
            return
        at = data.index(b"PK\x01\x02", at + 4)
