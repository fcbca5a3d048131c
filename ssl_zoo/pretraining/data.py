"""Unlabelled training data: images, ``.npy``/``.npz`` arrays, NIfTI volumes and DICOM files, in a resumable order.

Every sample is read through one intensity recipe (``ssl_zoo.intensity``: by default uint8 / 255 and other
types min-max scaled per image or slice; a DICOM file's own window; MONOCHROME1 inverted), becomes a (C, S, S)
float tensor in [0, 1] (grey repeated to C channels), then the method's ``views``. Slices of volumes (NIfTI,
.npz ``volumes``, multi-frame DICOM, a DICOM series of one file per slice ordered by position) carry their
volume index and relative position, which Chaitanya et al.'s partition-aware loss needs; DICOM samples carry
their patient, so a validation split keeps each patient on one side.

The order is a pure function of (seed, epoch), and each sample's augmentation is drawn with torch's RNG
seeded from (seed, epoch, position), so resuming at step k replays exactly the batches an uninterrupted
run would have drawn, with any number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from ..errors import TrainingDataError
from ..extras import extra_imports
from ..intensity import Intensity, intensity_of, read_dicom, scale_to_unit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
VOLUME_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom")


@dataclass(frozen=True)
class Sample:
    """One 2-D training image: how to read it (float32 in [0, 1]), where it sits in its volume (-1 for a plain
    image), and the patient / study it belongs to ("" when unknown)."""

    read: Callable[[], np.ndarray]
    volume: int = -1
    position: float = 0.0
    group: str = ""


def scan(path: Path, intensity: Intensity | str | None = None) -> list[Sample]:
    """Every sample under ``path`` (a folder or one file), in a stable order.

    Args:
        path: A folder or one file.
        intensity: The intensity recipe of the data (``ssl_zoo.intensity``), or the registry entry or dataset
            card whose recipe it is; default "auto".

    Raises:
        TrainingDataError: If nothing readable is found.
    """
    recipe = intensity_of(intensity)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    dicoms = [f for f in files if f.name.lower().endswith(DICOM_SUFFIXES)]
    samples: list[Sample] = []
    for file in files:
        samples += _samples_of(file, 1 + max((s.volume for s in samples), default=-1), recipe)
    samples += _dicom_samples(dicoms, 1 + max((s.volume for s in samples), default=-1), recipe)
    if not samples:
        raise TrainingDataError(f"no images, .npy/.npz arrays, NIfTI volumes or DICOM files under {path}: "
                                "point --data at them")
    return samples


def _samples_of(file: Path, volume_base: int, recipe: Intensity) -> list[Sample]:
    name = file.name.lower()
    if file.suffix.lower() in IMAGE_SUFFIXES:
        return [Sample(lambda f=file: scale_to_unit(_read_image(f), recipe))]
    if name.endswith(VOLUME_SUFFIXES):
        return _volume_samples(_read_nifti(file), volume_base, recipe)
    if file.suffix.lower() in (".npy", ".npz"):
        return _array_samples(file, volume_base, recipe)
    return []


def _dicom_samples(files: list[Path], volume_base: int, recipe: Intensity) -> list[Sample]:
    """DICOM files: a series of several files is a volume ordered by slice position, a multi-frame file a
    volume of its frames, any other file one image; every sample carries its PatientID."""
    with extra_imports():
        import pydicom

    series: dict[str, list[tuple[Path, Any]]] = {}
    for file in files:
        ds = pydicom.dcmread(str(file), stop_before_pixels=True)
        series.setdefault(str(ds.get("SeriesInstanceUID", file)), []).append((file, ds))
    samples: list[Sample] = []
    volume = volume_base
    for members in series.values():
        file, ds = members[0]
        patient = str(ds.get("PatientID", "") or "")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if len(members) > 1:
            members.sort(key=lambda m: _slice_order(m[1]))
            reads = [lambda f=f: read_dicom(f, recipe) for f, _ in members]
        elif frames > 1:
            reads = [lambda d=d: read_dicom(file, recipe)[d] for d in range(frames)]
        else:
            samples.append(Sample(lambda f=file: read_dicom(f, recipe), group=patient))
            continue
        samples += [Sample(read, volume, (d + 0.5) / len(reads), patient) for d, read in enumerate(reads)]
        volume += 1
    return samples


def _slice_order(ds: Any) -> tuple[float, int]:
    """Where a slice sits in its series: along the image normal when the file says, else its instance number."""
    position, orientation = ds.get("ImagePositionPatient"), ds.get("ImageOrientationPatient")
    number = int(ds.get("InstanceNumber", 0) or 0)
    if position is None or orientation is None:
        return float(number), number
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    return float(np.dot(normal, np.asarray(position, float))), number


def _read_image(file: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(file) as img:
        return np.asarray(img.convert("RGB") if img.mode not in ("L", "I;16", "I", "F") else img)


def _read_nifti(file: Path) -> np.ndarray:
    with extra_imports():
        import nibabel

    return np.moveaxis(np.asarray(nibabel.load(str(file)).dataobj), -1, 0)  # slices first


def _array_samples(file: Path, volume_base: int, recipe: Intensity) -> list[Sample]:
    with np.load(file, allow_pickle=False) as data:  # allow_pickle=False: arrays only, nothing executes
        arrays = {"images": data} if isinstance(data, np.ndarray) else {k: data[k] for k in data.files}
    if "volumes" in arrays:
        return [s for i, vol in enumerate(arrays["volumes"]) for s in _volume_samples(vol, volume_base + i, recipe)]
    images = arrays.get("images", next(iter(arrays.values())))
    if images.ndim not in (3, 4):
        raise TrainingDataError(f"{file}: expected images (N, H, W[, C]) or a 'volumes' array (V, D, H, W), "
                                f"got shape {images.shape}")
    return [Sample(lambda a=image: scale_to_unit(a, recipe)) for image in images]


def _volume_samples(volume: np.ndarray, index: int, recipe: Intensity) -> list[Sample]:
    """Slices of one volume (slices first), each scaled on its own."""
    depth = len(volume)
    return [Sample(lambda a=volume[d]: scale_to_unit(a, recipe), volume=index, position=(d + 0.5) / depth)
            for d in range(depth)]


def to_tensor(array: np.ndarray, size: int, channels: int) -> torch.Tensor:
    """(H, W[, C]) array → (channels, size, size) float in [0, 1] (floats in [0, 1] kept, see ``scale_to_unit``)."""
    image = torch.from_numpy(np.ascontiguousarray(scale_to_unit(np.asarray(array), Intensity())))
    image = image.permute(2, 0, 1) if image.ndim == 3 else image.unsqueeze(0)
    if image.shape[0] != channels:
        image = image[:1].expand(channels, -1, -1) if channels != 1 else image.mean(0, keepdim=True)
    return F.interpolate(image.unsqueeze(0), size=(size, size), mode="bilinear", antialias=True,
                         align_corners=False)[0].clamp(0, 1)


class ViewDataset(Dataset):
    """``dataset[(index, seed)]`` → the method's views of sample ``index``, drawn with torch seeded by ``seed``."""

    def __init__(self, samples: list[Sample], views: Callable, size: int, channels: int = 3):
        self.samples, self.views, self.size, self.channels = samples, views, size, channels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = key
        sample = self.samples[index]
        image = to_tensor(sample.read(), self.size, self.channels)
        meta = {"volume": float(sample.volume), "position": sample.position}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.views(image, meta)
        return {**out, **{k: torch.tensor(v) for k, v in meta.items()}}


class ResumableBatches(Sampler):
    """Batches of ``(index, seed)`` keys for one epoch, starting at batch ``skip``, this rank's share only.

    The global batch is ``per_rank * world``; the last incomplete global batch is dropped.
    """

    def __init__(self, n: int, per_rank: int, *, seed: int, epoch: int, skip: int = 0, rank: int = 0,
                 world: int = 1):
        self.n, self.per_rank, self.seed, self.epoch = n, per_rank, seed, epoch
        self.skip, self.rank, self.world = skip, rank, world

    def __len__(self) -> int:
        return batches_per_epoch(self.n, self.per_rank * self.world) - self.skip

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        size = self.per_rank * self.world
        for b in range(self.skip, batches_per_epoch(self.n, size)):
            start = b * size + self.rank * self.per_rank
            yield [(order[i], self._sample_seed(i)) for i in range(start, start + self.per_rank)]

    def _sample_seed(self, position: int) -> int:
        return (self.seed * 1_000_003 + self.epoch) * 10_000_019 + position


def batches_per_epoch(n: int, global_batch: int) -> int:
    """Full global batches in ``n`` samples.

    Raises:
        TrainingDataError: When there are fewer samples than one batch.
    """
    if n < global_batch:
        raise TrainingDataError(f"{n} samples are fewer than one batch of {global_batch}: lower --batch-size")
    return n // global_batch
