"""Read ``torch.save`` files, zip or legacy, with ``weights_only=True`` and nothing else.

Files that name globals beyond torch's defaults (Lightning callbacks keyed by class, ``argparse.Namespace``,
numpy scalars) go through :mod:`.safe_pickle`, which allows a short list of them as inert stand-ins and
refuses the rest before loading starts. Every other container gets a one-line error saying what to do next.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any, Final

import torch

from ...errors import NotACheckpointError, ResourceLimitError, SslZooError
from .pickle_limits import MAX_PICKLE_BYTES, BoundedStream, Limits, PickleBudget
from .safe_pickle import PickleScan, allowing, scan_pickle, stand_ins_for
from .zip_limits import check_zip_sizes
from .sniff import head_bytes, is_torchscript_zip, sniff, zip_is_intact

__all__ = ["read_torch_file"]

_TRUNCATED: Final = "{path}: truncated or corrupt download ({reason}): delete it and pull again"
_WRONG_KIND: Final[dict[str, str]] = {
    "html": ("{path} is a web page, not a checkpoint: the download link needs a browser/login; "
             "download by hand and run `ssl-zoo convert NAME --from-file FILE`"),
    "torch-tar": ("{path} was saved by torch < 0.1.10 in the old tar format, which cannot be read safely; "
                  "re-save it with `torch.save` in an old torch, or fetch a newer copy"),
    "empty": "{path} is empty (0 bytes): delete it and pull again",
    "pickle": ("{path} is a plain pickle, not a torch.save file (a Haiku/JAX checkpoint, format 'haiku-pickle'?): "
               "this entry reads torch files; check that it is the file `ssl-zoo info NAME` names"),
    "zip": ("{path} is a zip archive but not a torch.save file (a TensorFlow checkpoint, format "
            "'tf1-checkpoint'?): this entry reads torch files; check that it is the file `ssl-zoo info NAME` names"),
    "unknown": ("{path} is not a checkpoint format ssl_zoo knows (it starts with {head}): check the URL, "
                "or delete it and pull again"),
}
_TORCHSCRIPT: Final = ("{path} is a TorchScript archive (torch.jit.save), not a torch.save file: save its "
                       "state_dict() with torch.save and run `ssl-zoo convert NAME --from-file FILE`")
_NEW_PROTOCOL: Final = ("{path} was pickled with protocol {protocol}, which torch's safe loader cannot read: "
                        "re-save it with torch.save's default protocol (2)")
_UNREADABLE: Final = ("{path} cannot be read safely ({reason}); ssl_zoo only loads tensors and plain metadata: "
                      "re-save the state_dict alone with torch.save")
# A legacy file is five pickles in a row (magic number, protocol, sys info, the object, storage keys), and
# torch unpickles all of them, so all are scanned.
_LEGACY_PICKLES: Final = 5
_LOAD_ERRORS: Final = (pickle.UnpicklingError, AttributeError, TypeError, ValueError, KeyError, IndexError)
_CHECK_CHUNK: Final = 1 << 20


def read_torch_file(path: Path | str) -> Any:
    """Load a ``torch.save`` file safely and return its top-level object, tensors on CPU.

    Args:
        path: The file; its container is recognised by content, whatever its extension.

    Returns:
        What was saved: dicts/lists of tensors and plain values. Allowed foreign objects come back as
        inert stand-ins (see :class:`~.safe_pickle.PickleStub`); numpy scalars come back as numpy scalars.

    Raises:
        UnsafePickleError: If the file names a global outside the allow-list (nothing from it ran).
        NotACheckpointError: If the file is a web page, empty, truncated, a legacy tar, another container,
            or uses pickle features the safe loader cannot read.
        OSError: If the file cannot be read.

    Example:
        >>> sd = read_torch_file(Path("moco_v2_800ep_pretrain.pth.tar"))["state_dict"]  # doctest: +SKIP
    """
    path = Path(path)
    kind = sniff(path)
    if kind == "torch-zip" and is_torchscript_zip(path):
        raise NotACheckpointError(_TORCHSCRIPT.format(path=path))
    if kind in ("torch-zip", "torch-legacy"):
        return _load(path, is_zip=kind == "torch-zip")
    raise NotACheckpointError(_explain(path, kind))


def _explain(path: Path, kind: str) -> str:
    if kind == "zip" and not zip_is_intact(path):
        return _TRUNCATED.format(path=path, reason="the zip directory is missing")
    return _WRONG_KIND[kind].format(path=path, head=head_bytes(path, 16))


def _load(path: Path, is_zip: bool) -> Any:
    scan = _scan(path, is_zip)
    stand_ins = stand_ins_for(path, scan.globals)  # refuses before torch reads anything
    if scan.protocol > 2:
        raise NotACheckpointError(_NEW_PROTOCOL.format(path=path, protocol=scan.protocol))
    with allowing(stand_ins):
        return _torch_load(path, is_zip)


def _scan(path: Path, is_zip: bool) -> PickleScan:
    try:
        scans = _scan_zip(path) if is_zip else _scan_legacy(path)
    except SslZooError:
        raise
    except (ValueError, EOFError, zipfile.BadZipFile) as err:  # pickletools reports a cut stream as ValueError
        raise NotACheckpointError(_TRUNCATED.format(path=path, reason=_reason(err))) from err
    names = frozenset().union(*(scan.globals for scan in scans))
    return PickleScan(max(scan.protocol for scan in scans), names - _torch_default_globals())


def _scan_zip(path: Path) -> list[PickleScan]:
    with zipfile.ZipFile(path) as zf:
        holds = check_zip_sizes(zf, path)
        info = next(i for i in zf.infolist() if i.filename.count("/") == 1 and i.filename.endswith("/data.pkl"))
        if info.file_size > MAX_PICKLE_BYTES:
            raise ResourceLimitError(f"{path}: data.pkl declares {info.file_size:,} bytes, more than the "
                                     f"{MAX_PICKLE_BYTES:,} a checkpoint's pickle needs (limit: pickle size)")
        with zf.open(info) as stream:
            scan = scan_pickle(BoundedStream(stream, info.file_size, str(path)),
                               PickleBudget(Limits.for_file(holds), str(path)))
        check_zip_crcs(zf, path)
    return [scan]


def check_zip_crcs(zf: zipfile.ZipFile, path: Path) -> None:
    """Read every member once so that zipfile checks its CRC-32 (torch's own reader never does).

    Raises:
        NotACheckpointError: Naming the first member whose bytes do not match its CRC-32.
    """
    for info in zf.infolist():
        try:
            with zf.open(info) as stream:
                while stream.read(_CHECK_CHUNK):
                    pass
        except (zipfile.BadZipFile, EOFError, OSError) as err:
            raise NotACheckpointError(_TRUNCATED.format(path=path, reason=f"{info.filename}: {_reason(err)}")) from None


def _scan_legacy(path: Path) -> list[PickleScan]:
    size = path.stat().st_size
    with open(path, "rb") as raw:
        stream = BoundedStream(raw, size, str(path))
        return [scan_pickle(stream, PickleBudget(Limits.for_file(size), str(path))) for _ in range(_LEGACY_PICKLES)]


def _torch_default_globals() -> frozenset[str]:
    # The public get_unsafe_globals_in_checkpoint reads zip files only and also subtracts whatever is
    # registered process-wide at that moment; torch's default set is only reachable through this helper.
    from torch import _weights_only_unpickler

    return frozenset(_weights_only_unpickler._get_allowed_globals())


def _torch_load(path: Path, is_zip: bool) -> Any:
    try:
        # mmap keeps a large zip checkpoint out of RAM; the legacy stream cannot be mapped
        return torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except SslZooError as err:  # a stand-in refused a value (an object dtype)
        raise type(err)(_UNREADABLE.format(path=path, reason=err)) from None
    except (EOFError, RuntimeError) as err:
        raise NotACheckpointError(_TRUNCATED.format(path=path, reason=_reason(err))) from err
    except _LOAD_ERRORS as err:
        raise NotACheckpointError(_UNREADABLE.format(path=path, reason=_reason(err))) from err


def _reason(err: BaseException) -> str:
    # torch wraps the real cause in a long paragraph (which also suggests turning weights_only off, never
    # an option here); keep the cause only, on one line
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:160] if lines else type(err).__name__
