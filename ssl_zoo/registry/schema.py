"""The typed, frozen records of the catalog, built from TOML tables that may hold no unknown key."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import IntensityError, RegistryError
from .intensity import Intensity, parse_intensity

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
HEX_RE = re.compile(r"^[0-9a-f]{8,64}$")
STATUSES = ("public", "user-supplied")
FORMATS = ("torch", "tf1-checkpoint", "haiku-pickle")
VALUE_RANGES = {"[0,1]": 1.0, "[0,255]": 255.0}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


@dataclass(frozen=True)
class Source:
    """One upstream file of an entry.

    Attributes:
        url: Where upstream publishes it (empty for user-supplied files).
        filename: The file name used in the cache and in the mirror layout ``<mirror>/<name>/<filename>``.
        sha256: The full sha256, when known; enforced.
        sha256_prefix: A published sha256 prefix (torchvision file names carry one); enforced.
        size: Size in bytes, when known.
        mirrors: Other URLs serving the very same bytes, tried in order after ``url``.
    """

    url: str
    filename: str
    sha256: str | None = None
    sha256_prefix: str | None = None
    size: int | None = None
    mirrors: tuple[str, ...] = ()

    @property
    def pinned(self) -> bool:
        """Whether the registry itself pins this file's content."""
        return bool(self.sha256 or self.sha256_prefix)


@dataclass(frozen=True)
class Preprocessing:
    """What the network expects as input, as the upstream recipe used it.

    Attributes:
        input_size: (channels, height, width) of the training crops.
        mean: Per-channel mean subtracted after scaling to ``value_range``; None when not normalised.
        std: Per-channel std; None when not normalised.
        value_range: The range pixels are scaled to before normalisation, e.g. "[0,1]".
        channels: "RGB", or e.g. "grayscale replicated to RGB".
        interpolation: Resize interpolation ("bilinear", "bicubic").
        resize: Shorter side before the center crop at evaluation, or None.
        notes: Anything else, in words.
        grayscale: The network was trained on one-channel images (replicated to ``input_size[0]`` channels):
            colour input is reduced to luminance first.
        window: ``(low, high)`` in the input's own units (Hounsfield units for CT): values are clipped to it and
            mapped linearly to [0,1]. None: integer images are scaled by their dtype or range (see transforms).
        histogram_equalize: Equalise the histogram after the crop (CovidPrognosis ``HistogramNormalize``).
        intensity: How raw pixels (a DICOM, a 16-bit image) became the training images, as an
            ``ssl_zoo.intensity`` recipe ("auto", "minmax", "window:LOW,HIGH", "file-window"); ``window``, when
            set, is the same as "window:LOW,HIGH".
    """

    input_size: tuple[int, ...] = (3, 224, 224)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    value_range: str = "[0,1]"
    channels: str = "RGB"
    interpolation: str = "bilinear"
    resize: int | None = None
    notes: str = ""
    grayscale: bool = False
    window: tuple[float, float] | None = None
    histogram_equalize: bool = False
    intensity: str = "auto"

    @property
    def spatial_dims(self) -> int:
        """2 for images (C, H, W), 3 for volumes (C, D1, D2, D3)."""
        return len(self.input_size) - 1

    @property
    def intensity_recipe(self) -> Intensity:
        """The intensity recipe as a record: the ``window`` when set, else ``intensity``."""
        return Intensity("window", self.window) if self.window is not None else parse_intensity(self.intensity)

    @property
    def value_scale(self) -> float:
        """What [0,1] intensities are multiplied by to reach ``value_range``."""
        return VALUE_RANGES[self.value_range]

    @property
    def normalized(self) -> bool:
        """Whether mean/std normalisation is part of the recipe."""
        return self.mean is not None

    @property
    def crop_pct(self) -> float:
        """Center-crop fraction (crop / resize), as timm's ``pretrained_cfg`` wants it."""
        return round(self.input_size[-1] / self.resize, 4) if self.resize else 1.0

    def describe(self) -> str:
        """A one-line human summary, e.g. "3x224x224 RGB, [0,1], mean (...) std (...)"."""
        size = "x".join(str(v) for v in self.input_size)
        norm = f"mean {self.mean} std {self.std}" if self.normalized else "no normalisation"
        return f"{size} {self.channels}, {self.value_range}, {norm}"


@dataclass(frozen=True)
class Entry:
    """Everything the registry knows about one checkpoint.

    Attributes:
        name: The registry name (lowercase, e.g. "moco-v2").
        arch: Target architecture ("resnet50", "resnet18", "densenet121", ...).
        method: Pre-training method as the paper names it ("MoCo v2").
        family: Converter family: the rule list in ``ssl_zoo.converters.families``.
        format: Upstream file format, which picks the reader ("torch", "tf1-checkpoint", "haiku-pickle").
        paper: Paper title, authors and year.
        paper_url: Link to the paper.
        code_url: Link to the releasing repository.
        license: Licence of the weights (SPDX id where one exists).
        non_commercial: True when the licence forbids commercial use.
        pretraining_data: The data the weights were trained on.
        description: The recipe in a few words (epochs, batch, reported accuracy).
        preprocessing: The input the network expects.
        sources: The upstream files; the first one is the checkpoint to convert.
        status: "public" (downloadable) or "user-supplied" (no public file).
        how_to_get: For user-supplied entries, how to obtain the file.
        hf_repo: The Hub repository holding the converted folder, when published.
        tags: Free keywords for filtering.
    """

    name: str
    arch: str
    method: str
    family: str
    paper: str
    license: str
    pretraining_data: str
    preprocessing: Preprocessing
    sources: tuple[Source, ...] = ()
    format: str = "torch"
    paper_url: str = ""
    code_url: str = ""
    non_commercial: bool = False
    description: str = ""
    status: str = "public"
    how_to_get: str = ""
    hf_repo: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def checkpoint(self) -> Source:
        """The upstream file that is converted (the first source)."""
        return self.sources[0]


def _reject_unknown(kind: str, where: str, data: Mapping[str, Any], cls: type) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RegistryError(f"{where}: unknown {kind} key(s) {unknown}; allowed: {sorted(known)}")


def _tuple_fields(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {k: (tuple(v) if k in names and v is not None else v) for k, v in data.items()}


def parse_source(where: str, data: Mapping[str, Any]) -> Source:
    """Build a ``Source`` from a TOML table, rejecting unknown keys and malformed hashes."""
    _reject_unknown("source", where, data, Source)
    source = Source(**_tuple_fields(data, ("mirrors",)))
    if source.sha256 and not SHA256_RE.match(source.sha256):
        raise RegistryError(f"{where}: sha256 must be 64 lowercase hex digits, got {source.sha256!r}")
    if source.sha256_prefix and not HEX_RE.match(source.sha256_prefix):
        raise RegistryError(f"{where}: sha256_prefix must be 8-64 lowercase hex digits")
    if not source.filename or "/" in source.filename or source.filename.startswith("."):
        raise RegistryError(f"{where}: filename must be a plain file name, got {source.filename!r}")
    return source


def parse_preprocessing(where: str, data: Mapping[str, Any]) -> Preprocessing:
    """Build a ``Preprocessing`` from a TOML table, rejecting unknown keys."""
    _reject_unknown("preprocessing", where, data, Preprocessing)
    pre = Preprocessing(**_tuple_fields(data, ("input_size", "mean", "std", "window")))
    if (pre.mean is None) != (pre.std is None):
        raise RegistryError(f"{where}: give both mean and std, or neither")
    if len(pre.input_size) not in (3, 4):
        raise RegistryError(f"{where}: input_size is (channels, height, width) or (channels, d1, d2, d3)")
    if pre.value_range not in VALUE_RANGES:
        raise RegistryError(f"{where}: value_range must be one of {sorted(VALUE_RANGES)}")
    if pre.interpolation not in INTERPOLATIONS:
        raise RegistryError(f"{where}: interpolation must be one of {INTERPOLATIONS}")
    if pre.window is not None and (len(pre.window) != 2 or pre.window[0] >= pre.window[1]):
        raise RegistryError(f"{where}: window must be [low, high] with low < high")
    try:
        recipe = parse_intensity(pre.intensity)
    except IntensityError as exc:
        raise RegistryError(f"{where}: intensity: {exc}") from exc
    if pre.window is not None and recipe.scaling != "auto":
        raise RegistryError(f"{where}: give a window or an intensity recipe, not both")
    return pre


def parse_entry(name: str, data: Mapping[str, Any], presets: Mapping[str, Preprocessing]) -> Entry:
    """Build an ``Entry`` named ``name`` from its TOML table.

    Args:
        name: The table name, which becomes the registry name.
        data: The table's contents.
        presets: Named preprocessing records that ``preprocessing = "<preset>"`` may refer to.

    Raises:
        RegistryError: On an unknown key, a bad value or a missing required field.
    """
    where = f"[{name}]"
    if not NAME_RE.match(name):
        raise RegistryError(f"{where}: names are lowercase letters, digits, '-' and '.'")
    _reject_unknown("entry", where, data, Entry)
    fields = dict(data)
    fields["preprocessing"] = _preprocessing(where, fields.get("preprocessing"), presets)
    fields["sources"] = tuple(parse_source(f"{where} source {i}", s) for i, s in enumerate(fields.get("sources", ())))
    fields["tags"] = tuple(fields.get("tags", ()))
    try:
        entry = Entry(name=name, **fields)
    except TypeError as exc:  # a required field is missing
        raise RegistryError(f"{where}: {exc}") from None
    _check_entry(where, entry)
    return entry


def _preprocessing(where: str, value: Any, presets: Mapping[str, Preprocessing]) -> Preprocessing:
    if isinstance(value, str):
        if value not in presets:
            raise RegistryError(f"{where}: unknown preprocessing preset {value!r}; known: {sorted(presets)}")
        return presets[value]
    if isinstance(value, Mapping):
        base = value.get("preset")
        if base is not None:
            overrides = {k: v for k, v in value.items() if k != "preset"}
            merged = {**dataclasses.asdict(_preprocessing(where, base, presets)), **overrides}
            return parse_preprocessing(where, merged)
        return parse_preprocessing(where, value)
    raise RegistryError(f"{where}: preprocessing must be a preset name or a table")


def _check_entry(where: str, entry: Entry) -> None:
    if entry.status not in STATUSES:
        raise RegistryError(f"{where}: status must be one of {STATUSES}")
    if entry.format not in FORMATS:
        raise RegistryError(f"{where}: format must be one of {FORMATS}")
    if entry.status == "public" and not all(s.url for s in entry.sources):
        raise RegistryError(f"{where}: a public entry needs a url for every source")
    if not entry.sources:
        raise RegistryError(f"{where}: at least one source (the file to convert) is required")
    if entry.status == "user-supplied" and not entry.how_to_get:
        raise RegistryError(f"{where}: a user-supplied entry must say how to get the file (how_to_get)")
