"""The model folder (ARCHITECTURE.md, "The model folder"): write it atomically and verified, read it back, check it.

A folder is built under a hidden temporary name beside its destination and renamed into place only after
the safetensors file has been reloaded and compared tensor by tensor, so an interrupted conversion (Ctrl-C,
full disk, a crash) never leaves a folder that looks complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import DiskFullError, ModelFolderError
from ..store.cache import VERIFY_ENV, env_flag
from ..store.atomic import fsync_dir, write_text_atomic
from ..store.hashes import sha256_file

if TYPE_CHECKING:  # torch is imported where tensors are handled, so `ssl-zoo list` can use this module
    import torch

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
REQUIRED = (WEIGHTS, CONFIG, CARD)


def write_folder(
    dest: Path,
    tensors: dict[str, torch.Tensor],
    metadata: dict[str, str],
    make_text: Any,
    *,
    extra_files: Mapping[str, Path] | None = None,
) -> Path:
    """Write a model folder at ``dest`` atomically: every converted, pre-trained or installed folder goes through here.

    Args:
        dest: The final folder; replaced as a whole if it exists.
        tensors: Contiguous tensors to store.
        metadata: safetensors ``__metadata__`` (str -> str).
        make_text: ``f(weights_sha256) -> (config_dict, card_text)``, called once the weights are written.
        extra_files: ``{name in the folder: existing file}`` copied in before the folder appears (e.g. the loss
            curve the card shows); the names must not be hidden or one of the required files.

    Returns:
        ``dest``.

    Raises:
        DiskFullError: When the disk fills up; nothing is left behind.
        ModelFolderError: When the written weights do not read back identical.
    """
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        _write_weights(tmp / WEIGHTS, tensors, metadata)
        config, card = make_text(sha256_file(tmp / WEIGHTS))
        config.setdefault("ssl_zoo", {})["weights_size"] = (tmp / WEIGHTS).stat().st_size  # the cheap check
        write_text_atomic(tmp / CONFIG, json.dumps(config, indent=2) + "\n")
        write_text_atomic(tmp / CARD, card)
        for name, source in (extra_files or {}).items():
            _check_extra_name(name, dest)
            shutil.copyfile(source, tmp / name)
        replace_dir(tmp, dest)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"no space left writing {dest}: free space or set SSL_ZOO_HOME to a bigger disk") from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _check_extra_name(name: str, dest: Path) -> None:
    if name in REQUIRED or name.startswith(".") or Path(name).name != name:
        raise ModelFolderError(f"{dest}: {name!r} cannot be added to a model folder: give a plain file name "
                               f"other than {', '.join(REQUIRED)}")


def _write_weights(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
    differing = _differing_tensors(path, tensors)
    if differing:
        raise ModelFolderError(f"{path}: {len(differing)} tensors did not read back identical "
                               f"(e.g. {differing[0]}); disk or memory fault? convert again")


def _differing_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> list[str]:
    """Keys whose stored bytes differ from ``tensors``, reading one tensor at a time.

    Plain reads rather than a memory map keep the extra memory to the largest tensor instead of a second copy
    of the whole model. Layout (safetensors spec): 8-byte little-endian header size, JSON header, data.
    """
    import torch

    with open(path, "rb") as fh:
        header_size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(header_size))
        header.pop("__metadata__", None)
        differing = sorted(set(tensors) ^ set(header))
        for key in sorted(set(tensors) & set(header)):
            start, end = header[key]["data_offsets"]
            fh.seek(8 + header_size + start)
            stored = torch.frombuffer(bytearray(fh.read(end - start)), dtype=torch.uint8)
            if not torch.equal(stored, tensors[key].reshape(-1).view(torch.uint8)):
                differing.append(key)
    return differing


def replace_dir(tmp: Path, dest: Path) -> None:
    """Swap the finished folder ``tmp`` in at ``dest`` (replacing any old one) with renames only."""
    # A directory cannot be renamed over a non-empty one: move the old folder aside first.
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    shutil.rmtree(old, ignore_errors=True)


def missing_files(folder: Path) -> list[str]:
    """The files of a model folder that ``folder`` lacks."""
    return [name for name in REQUIRED if not (folder / name).is_file()]


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` holds every file of a model folder."""
    return not missing_files(folder)


def read_config(folder: Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder.

    Raises:
        ModelFolderError: If the folder is incomplete or the JSON is unreadable.
    """
    missing = missing_files(folder)
    if missing:
        raise ModelFolderError(_not_a_folder(folder, missing))
    try:
        return json.loads((folder / CONFIG).read_text())
    except ValueError as exc:
        raise ModelFolderError(f"{folder / CONFIG} is not valid JSON ({exc}): pull it again with --force") from None


def _not_a_folder(folder: Path, missing: list[str]) -> str:
    """Why ``folder`` is not a model folder, and what to give instead (a damaged one is pulled again)."""
    if len(missing) < len(REQUIRED):
        return f"{folder} is an incomplete model folder (missing {missing}): pull or convert it again"
    what = "does not exist" if not folder.exists() else "is not a model folder (no config.json, model.safetensors)"
    return (f"{folder} {what}: give a registry name (`ssl-zoo list`), hf-hub:ORG/REPO, or a folder written by "
            "`ssl-zoo pull`, `convert` or `pretrain`")


def read_weights(folder: Path, *, verify: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` (memory-mapped, on CPU), after the cheap checks of :func:`check_intact`.

    Args:
        folder: A model folder.
        verify: Also re-hash the weights against ``config.json`` (also on with ``SSL_ZOO_VERIFY=1``).

    Raises:
        ModelFolderError: If the folder is incomplete, damaged or (with ``verify``) modified.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    check_intact(folder)
    if verify or env_flag(VERIFY_ENV):
        verify_folder(folder)
    try:
        return load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelFolderError(_damaged(folder, reason)) from None


MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


def check_intact(folder: Path) -> Path:
    """The cheap checks run on every load and every "cached": all files there, the size ``config.json``
    records, and a safetensors header that parses and whose tensors end exactly where the file ends.

    Returns:
        ``folder``.

    Raises:
        ModelFolderError: Saying ``ssl-zoo pull NAME --force``.
    """
    config = read_config(folder)
    path = folder / WEIGHTS
    size = path.stat().st_size
    recorded = config.get("ssl_zoo", {}).get("weights_size")
    if recorded is not None and recorded != size:
        raise ModelFolderError(_damaged(folder, f"{size:,} bytes where config.json records {recorded:,}"))
    problem = _header_problem(path, size)
    if problem:
        raise ModelFolderError(_damaged(folder, problem))
    return folder


def _header_problem(path: Path, size: int) -> str | None:
    """What is wrong with a safetensors file's layout (spec: u64 header size, JSON header, data), or None."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= min(MAX_HEADER, size - 8):
            return "its header length is impossible"
        try:
            header = json.loads(fh.read(length))
        except ValueError:
            return "its header is not valid JSON"
    if not isinstance(header, dict):
        return "its header is not a table of tensors"
    header.pop("__metadata__", None)
    try:
        ends = [int(info["data_offsets"][1]) for info in header.values()]
    except (TypeError, KeyError, IndexError, ValueError):
        return "its header lists a tensor without offsets"
    if max(ends, default=0) != size - 8 - length:
        return f"its tensors end at byte {max(ends, default=0):,} of {size - 8 - length:,} data bytes"
    return None


def _damaged(folder: Path, what: str) -> str:
    return (f"{folder / WEIGHTS} is damaged or was edited ({what}): run `ssl-zoo pull {folder.name} --force` "
            "(or convert it again)")


def verify_folder(folder: Path) -> str:
    """Re-hash ``model.safetensors`` and compare with the digest recorded in ``config.json``.

    Returns:
        The digest.

    Raises:
        ModelFolderError: On a missing file or a digest mismatch.
    """
    recorded = read_config(folder).get("ssl_zoo", {}).get("weights_sha256")
    digest = sha256_file(folder / WEIGHTS)
    if recorded != digest:
        raise ModelFolderError(
            f"{folder / WEIGHTS}: sha256 {digest[:16]}... differs from config.json's {str(recorded)[:16]}...; "
            "the file was modified or damaged: run `ssl-zoo pull NAME --force`"
        )
    return digest


def folder_files(folder: Path) -> list[Path]:
    """The files that travel with a model folder (publish, bundles): every file whose name is not hidden.

    Raises:
        ModelFolderError: If the folder holds a link or a subfolder, which would copy something else.
    """
    files = [p for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
    odd = [p.name for p in files if p.is_symlink() or not p.is_file()]
    if odd:
        raise ModelFolderError(f"{folder}: {odd} are links or folders, which a model folder does not hold: "
                               "remove them, or pull the model again with --force")
    return files
