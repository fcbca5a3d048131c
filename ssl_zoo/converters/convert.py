"""Reader → family rules → exact validation → model folder, written atomically."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import __version__
from ..store import cache
from ..architectures import ArchSpec, expected_shapes, get_arch
from ..modelfolder.card import Provenance, config_dict, model_card
from .families import get_family
from .readers import read_checkpoint
from .rules import Report, Tensors, apply_rules
from ..errors import ConversionError
from ..modelfolder.files import write_folder
from ..registry import Entry

BATCH_COUNTER = "num_batches_tracked"


def convert_state_dict(obj: object, entry: Entry) -> tuple[Tensors, Report]:
    """The pure part: a checkpoint's top-level object → validated backbone tensors under torchvision names.

    Args:
        obj: What the reader returned for the entry's file.
        entry: The registry entry (its family and architecture).

    Returns:
        Contiguous tensors (float32, and int64 batch counters) with exactly the architecture's key set,
        and the report of what the rules did.

    Raises:
        ConversionError: On missing or unexpected keys, a shape mismatch or a non-finite value.
    """
    spec = get_arch(entry.arch)
    tensors, report = apply_rules(obj, get_family(entry.family).rules, spec.classifier)
    refuse_odd_tensors(tensors, entry.name)
    expected = expected_shapes(entry.arch, tensors)  # a U-Net head keeps its class count
    tensors = fill_batch_counters(tensors, expected, report)
    validate(tensors, expected, entry.name, spec)
    return unshare({k: normalize_tensor(k, v) for k, v in tensors.items()}), report


def odd_tensor(key: str, value: torch.Tensor) -> str | None:
    """Why ``value`` cannot become a float32 weight without changing what the file holds, or None."""
    if value.layout != torch.strided:
        return f"a sparse tensor ({value.layout})"
    if value.is_quantized:
        return f"a quantized tensor ({value.dtype})"
    if value.is_meta:
        return "a meta tensor (a shape without data)"
    if value.is_complex():
        return f"a complex tensor ({value.dtype})"
    if not value.is_floating_point() and not key.endswith(BATCH_COUNTER):
        return f"an integer tensor ({value.dtype}) where a float weight belongs"
    return None


def refuse_odd_tensors(tensors: Tensors, name: str) -> None:
    """Raise ``ConversionError`` for tensors that a cast to float32 would silently change (sparse, quantized,
    meta, complex, integer weights): the model folder holds exactly the file's weights or nothing."""
    for key, value in tensors.items():
        why = odd_tensor(key, value)
        if why:
            raise ConversionError(f"{name}: {key} is {why}, which ssl_zoo does not convert (a cast would change "
                                  "the weights): the file is not a plain float checkpoint; check where it came from")


def fill_batch_counters(tensors: Tensors, expected: dict[str, tuple[int, ...]], report: Report) -> Tensors:
    """Add ``num_batches_tracked = 0`` for BatchNorm layers saved before torch 0.4.1 (they have none).

    torch itself fills these silently when loading a plain dict; doing it here keeps every folder uniform.
    """
    missing = [k for k in expected if k.endswith(BATCH_COUNTER) and k not in tensors
               and k[: -len(BATCH_COUNTER)] + "running_mean" in tensors]
    if missing:
        report.steps.append(f"added {len(missing)} num_batches_tracked counters (file predates torch 0.4.1)")
    return {**tensors, **{k: torch.zeros((), dtype=torch.int64) for k in missing}}


def validate(tensors: Tensors, expected: dict[str, tuple[int, ...]], name: str, spec: ArchSpec) -> None:
    """Raise ``ConversionError`` unless ``tensors`` has exactly the expected keys and shapes, all finite."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != expected[k])
    problems = [_listing("missing", missing), _listing("unexpected", unexpected), _listing("wrong shape", wrong)]
    problems = [p for p in problems if p]
    if problems:
        raise ConversionError(
            f"{name}: the converted weights do not fit {spec.name} ({'; '.join(problems)}): "
            "the file is not the variant this entry expects; check `ssl-zoo info NAME` and report it"
        )
    bad = [k for k, v in tensors.items() if not is_finite(v)]
    if bad:
        raise ConversionError(f"{name}: {_listing('non-finite', bad)}: the checkpoint is damaged; pull it again")


def is_finite(tensor: torch.Tensor) -> bool:
    """Whether every value is finite; NaN and inf both propagate through ``amax`` (one fast pass)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    return bool(torch.isfinite(tensor.abs().amax()))


def _listing(what: str, keys: list[str]) -> str:
    return f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})" if keys else ""


def normalize_tensor(key: str, value: torch.Tensor) -> torch.Tensor:
    """float32 (int64 for batch counters) and contiguous; copies only when it has to."""
    dtype = torch.int64 if key.endswith(BATCH_COUNTER) else torch.float32
    return value.detach().to(dtype=dtype).contiguous()


def unshare(tensors: Tensors) -> Tensors:
    """Copy tensors whose storage another tensor already uses: safetensors refuses shared memory."""
    seen: set[int] = set()
    out: Tensors = {}
    for key, value in tensors.items():
        ptr = value.untyped_storage().data_ptr()
        out[key] = value.clone() if ptr in seen else value
        seen.add(ptr)
    return out


def source_framework_facts(entry: Entry, tensors: Tensors, converted: str) -> dict:
    """For checkpoints of another framework (TF, Haiku): the ``parity`` and ``input_convention`` blocks of
    ``config.json`` (which layers ``load`` pads as TF "SAME", what ``exact=False`` differs by, which copy of
    the weights was converted); empty for torch checkpoints."""
    from ..architectures.tf_same import parity_facts

    parity = {} if entry.format == "torch" else parity_facts(entry.family, entry.arch, tensors)
    if not parity:
        return {}
    return {"parity": {**parity, "converted_copy": converted},
            "input_convention": f"{entry.preprocessing.describe()}. {entry.preprocessing.notes}".strip()}


def convert_checkpoint(entry: Entry, path: Path, source_sha256: str, dest: Path | None = None) -> Path:
    """Convert the upstream file ``path`` of ``entry`` into a model folder.

    Args:
        entry: The registry entry.
        path: The upstream checkpoint (already verified by the caller).
        source_sha256: Its sha256, recorded in the folder.
        dest: The folder to write; default ``$SSL_ZOO_HOME/models/<name>``.

    Returns:
        The model folder.

    Raises:
        NotACheckpointError: If the file is not a readable checkpoint.
        ConversionError: If it does not convert exactly onto the architecture.
        DiskFullError: If the disk fills up (nothing is left behind).
    """
    tensors, report = convert_state_dict(read_checkpoint(path, entry.format), entry)
    spec = get_arch(entry.arch)
    family = get_family(entry.family)
    prov = Provenance(entry.checkpoint.url, entry.checkpoint.filename, source_sha256, entry.family,
                      tuple(family.describe()), dict(report.dropped), __version__)
    metadata = {"format": "pt", "name": entry.name, "arch": entry.arch, "source_url": prov.source_url,
                "source_sha256": source_sha256, "converter_family": entry.family, "ssl_zoo_version": __version__}

    facts = source_framework_facts(entry, tensors, family.summary)

    def texts(weights_sha256: str) -> tuple[dict, str]:
        config = config_dict(entry, spec, prov, weights_sha256)
        config["ssl_zoo"].update(facts)
        return config, model_card(entry, spec, prov, weights_sha256, config)

    return write_folder(dest or cache.model_dir(entry.name), tensors, metadata, texts)
