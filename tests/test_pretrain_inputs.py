"""Pre-training inputs: DICOM (real MONOCHROME1 chest CR inverted; modality rescale; a series as a volume),
NIfTI volumes, and the shared intensity recipes, each checked against a computation by hand."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from ssl_zoo.errors import IntensityError
from ssl_zoo.intensity import Intensity, intensity_of, parse_intensity, read_dicom, scale_to_unit
from ssl_zoo.pretraining import pretrain
from ssl_zoo.pretraining.data import scan

from .pretrain_data import OPTIONS, SIZE
from .pretrain_data import one_thread  # noqa: F401

pydicom = pytest.importorskip("pydicom")
nibabel = pytest.importorskip("nibabel")


def pydicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return Path(path)


def test_monochrome1_chest_cr_is_inverted_through_its_window():
    """RG1_UNCR (CR chest, MONOCHROME1): the file's VOI window, then 1 - value, as computed here by hand."""
    path = pydicom_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    raw = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    center = float(np.atleast_1d(ds.WindowCenter)[0])
    width = float(np.atleast_1d(ds.WindowWidth)[0])
    low, high = center - width / 2, center + width / 2
    expected = 1.0 - (np.clip(raw, low, high) - low) / (high - low)
    sample, = scan(path)
    got = sample.read()
    assert got.dtype == np.float32 and got.shape == raw.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)
    minmax = read_dicom(path, "minmax")
    np.testing.assert_allclose(minmax, 1.0 - (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)
    assert sample.group == str(ds.PatientID)


def test_ct_hounsfield_units_min_max_per_slice_and_window():
    """CT_small: stored values x slope + intercept = HU; 'minmax' over the slice, 'window' clips HU."""
    path = pydicom_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(read_dicom(path, "minmax"), (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)
    np.testing.assert_allclose(read_dicom(path, "window:-1000,1000"), (np.clip(hu, -1000, 1000) + 1000) / 2000,
                               atol=1e-6)


def test_a_dicom_series_is_one_volume_ordered_by_position(tmp_path):
    """Five slices written with shuffled file names: one volume, ordered along the normal, one patient."""
    template = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    order = [3, 0, 4, 1, 2]
    for name, z in enumerate(order):
        ds = copy.deepcopy(template)
        ds.ImagePositionPatient = [0.0, 0.0, float(z) * 2.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.InstanceNumber = 10 - z
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.PatientID = "patient-7"
        pixels = np.full(ds.pixel_array.shape, 100 * z, dtype=ds.pixel_array.dtype)
        pixels[0, 0] = 1000  # each slice keeps a range, so min-max maps its level to a known value
        ds.PixelData = pixels.tobytes()
        ds.save_as(tmp_path / f"slice{name}.dcm")
    samples = scan(tmp_path, "window:-2000,2000")
    assert {s.volume for s in samples} == {0} and {s.group for s in samples} == {"patient-7"}
    assert [s.position for s in samples] == [0.1, 0.3, 0.5, 0.7, 0.9]
    slope, intercept = float(template.RescaleSlope), float(template.RescaleIntercept)
    levels = [float(np.median(s.read())) for s in samples]
    assert levels == pytest.approx([(100 * z * slope + intercept + 2000) / 4000 for z in range(5)], abs=1e-6)


def test_a_multi_frame_file_is_a_volume_of_its_frames():
    samples = scan(pydicom_file("eCT_Supplemental.dcm"))
    assert [(s.volume, s.position) for s in samples] == [(0, 0.25), (0, 0.75)]
    assert samples[0].read().ndim == 2 and 0 <= samples[1].read().min() and samples[1].read().max() <= 1


def test_nifti_volume_slices_with_their_intensity(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.integers(-1200, 1500, size=(12, 10, 6)).astype(np.int16)  # x, y, slices (NIfTI's last axis)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "ct.nii.gz")
    samples = scan(tmp_path / "ct.nii.gz", "window:-1000,1000")
    assert len(samples) == 6 and {s.volume for s in samples} == {0}
    np.testing.assert_allclose(samples[2].read(), (np.clip(volume[:, :, 2], -1000, 1000) + 1000) / 2000, atol=1e-6)
    auto = scan(tmp_path / "ct.nii.gz")[2].read()
    plane = volume[:, :, 2].astype(np.float64)
    np.testing.assert_allclose(auto, (plane - plane.min()) / (plane.max() - plane.min()), atol=1e-6)


def test_intensity_recipes_parse_and_reject():
    assert parse_intensity(None) == Intensity()
    assert parse_intensity("window:-1000,1000") == Intensity("window", (-1000.0, 1000.0))
    assert str(parse_intensity("window:-1000,1000")) == "window:-1000,1000"
    assert scale_to_unit(np.array([[0, 255]], np.uint8), Intensity()).tolist() == [[0.0, 1.0]]
    for bad in ("hu", "window:3", "window:5,1"):
        with pytest.raises(IntensityError):
            parse_intensity(bad)
    with pytest.raises(IntensityError, match="no VOI window"):
        scale_to_unit(np.zeros((2, 2)), Intensity("file-window"))


def test_the_lidc_entries_scale_raw_ct_min_max_per_slice():
    """Wolf et al. min-max scaled each slice's whole HU range: the entry's recipe, used by ssl_zoo.transforms."""
    from ssl_zoo.preprocessing import to_unit_tensor
    from ssl_zoo.registry import get_entry

    pre = get_entry("lidc-moco-v2").preprocessing
    assert str(intensity_of("lidc-moco-v2")) == "minmax" and str(pre.intensity_recipe) == "minmax"
    hu = np.random.default_rng(0).integers(-1024, 3000, (40, 40)).astype(np.int16)
    unit = to_unit_tensor(hu, pre.intensity_recipe).numpy()[0]
    np.testing.assert_allclose(unit, (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)
    assert str(get_entry("models-genesis").preprocessing.intensity_recipe) == "window:-1000,1000"
    assert str(intensity_of("stoic")) == "window:-1000,250"  # a dataset card's recipe (ssl_zoo.datasets)
    with pytest.raises(IntensityError, match="registry entry or dataset card"):
        intensity_of("no-such-recipe")


@pytest.mark.usefixtures("one_thread")
def test_pretraining_on_dicom_files(tmp_path):
    """A short SimCLR run on 16 DICOM files (CT_small, shifted), read with the LIDC recipe (min-max per slice)."""
    template = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    data = tmp_path / "dicom"
    data.mkdir()
    for i in range(16):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = f"1.2.3.{i}"
        ds.PixelData = np.roll(ds.pixel_array, 8 * i, axis=1).tobytes()
        ds.save_as(data / f"{i}.dcm")
    out = tmp_path / "run"
    pretrain("simclr", data, out, epochs=1, batch_size=8, arch="resnet18", image_size=SIZE, device="cpu",
             intensity="lidc-moco-v2", options=OPTIONS.get("simclr", {}), progress=False)
    training = json.loads((out / "model" / "config.json").read_text())["ssl_zoo"]["training"]
    assert training["steps"] == 2 and training["watched"]["intensity"] == "minmax (from lidc-moco-v2)"
    from ssl_zoo.preprocessing import preprocessing_of

    assert preprocessing_of(out / "model").intensity == "minmax"  # evaluation reads raw CT as training did
