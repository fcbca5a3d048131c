"""Readers, splits, label fractions, the interval formula and the Dice empty-mask rule: exact checks, no model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from ssl_zoo.errors import DatasetError
from ssl_zoo.evaluation.data import read_dataset
from ssl_zoo.evaluation.file_readers import read_csv_labels, read_image_folder, read_npz, read_segmentation_pairs
from ssl_zoo.evaluation.images import read_image
from ssl_zoo.evaluation.splits import label_fraction, make_splits, split_indices
from ssl_zoo.evaluation.stats import summarize


def _png(path, value, size=8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


def test_split_indices_are_seeded_disjoint_and_sized():
    a, b = split_indices(50, seed=3), split_indices(50, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert [len(a[k]) for k in ("train", "val", "test")] == [32, 8, 10]
    assert sorted(np.concatenate(list(a.values())).tolist()) == list(range(50))
    perm = np.random.default_rng(3).permutation(50)
    assert a["test"].tolist() == sorted(perm[:10].tolist()) and a["val"].tolist() == sorted(perm[10:18].tolist())
    assert not np.array_equal(split_indices(50, seed=4)["test"], a["test"])


def test_label_fraction_subsamples_only_the_given_training_indices():
    train = np.arange(100, 140)
    kept = label_fraction(train, 0.25, seed=1)
    assert len(kept) == 10 and set(kept) <= set(train)
    assert kept.tolist() == sorted(np.random.default_rng(1).permutation(train)[:10].tolist())
    assert len(label_fraction(train, 0.001, seed=1)) == 1  # never empty
    assert label_fraction(train, 1.0, seed=1).tolist() == train.tolist()
    with pytest.raises(DatasetError):
        label_fraction(train, 0.0, seed=1)


def test_npz_splits_are_kept_and_val_carved_from_train(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 255, (n, 8, 8), dtype=np.uint8) for s, n in (("train", 20), ("test", 6))}
    arrays |= {"train_labels": (np.arange(20) % 3)[:, None], "test_labels": (np.arange(6) % 3)[:, None]}
    np.savez(tmp_path / "tiny.npz", **arrays)
    data = read_npz(tmp_path / "tiny.npz")
    assert data["train"].task == "multiclass" and data["train"].classes == ("0", "1", "2")
    parts, index = make_splits(data, seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [16, 4, 6]
    assert sorted(index["train"] + index["val"]) == list(range(20)) and index["test"] == list(range(6))


def test_stats_interval_uses_student_t():
    summary = summarize([0.70, 0.80, 0.90])
    assert summary["mean"] == pytest.approx(0.8) and summary["std"] == pytest.approx(0.1)
    assert summary["ci95"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), rel=1e-6)
    assert summary["ci95_low"] == pytest.approx(0.8 - summary["ci95"])
    single = summarize([0.5, float("nan")])
    assert single["n"] == 1 and single["std"] == 0.0 and single["ci95"] is None


def test_dice_empty_mask_rule():
    import torch

    from ssl_zoo.evaluation.segment_masks import dice_iou

    masks = torch.zeros(3, 1, 4, 4)
    masks[1, 0, :2] = 1  # 8 pixels
    masks[2, 0, 0, 0] = 1
    probs = torch.zeros(3, 1, 4, 4)
    probs[1, 0, :1] = 0.9  # 4 of the 8 pixels found
    probs[2, 0, 3, 3] = 0.9  # wrong pixel
    dice, iou = dice_iou(probs, masks)
    assert dice.tolist() == pytest.approx([1.0, 2 * 4 / (2 * 4 + 0 + 4), 0.0])  # both empty -> 1
    assert iou.tolist() == pytest.approx([1.0, 4 / 8, 0.0])
    probs[0, 0, 0, 0] = 0.9  # prediction on an empty target -> 0
    assert dice_iou(probs, masks)[0][0] == 0.0


def test_image_folder_reader(tmp_path):
    for cls, value in (("normal", 10), ("pneumonia", 200), ("covid", 120)):
        for i in range(2):
            _png(tmp_path / cls / f"{i}.png", value)
    samples = read_dataset(tmp_path)
    assert samples.classes == ("covid", "normal", "pneumonia") and samples.task == "multiclass"
    assert samples.targets.tolist() == [0, 0, 1, 1, 2, 2]
    assert read_image(samples.items[4]).max() == 200
    with pytest.raises(DatasetError):
        read_image_folder(tmp_path / "normal")


def test_csv_uncertain_label_policies(tmp_path):
    for name in ("a.png", "b.png"):
        _png(tmp_path / "img" / name, 0)
    (tmp_path / "labels.csv").write_text("Path,Edema,Effusion\nimg/a.png,1,-1\nimg/b.png,,0\n")
    zeros = read_csv_labels(tmp_path / "labels.csv", uncertain="zeros")
    assert zeros.task == "multilabel" and zeros.classes == ("Edema", "Effusion")
    assert zeros.targets.tolist() == [[1, 0], [0, 0]]  # blank -> 0
    assert read_csv_labels(tmp_path / "labels.csv", uncertain="ones").targets.tolist() == [[1, 1], [0, 0]]
    soft = read_csv_labels(tmp_path / "labels.csv", uncertain="lsr-ones").targets
    assert 0.55 <= soft[0, 1] <= 0.85 and soft[0, 0] == 1
    assert read_csv_labels(tmp_path / "labels.csv", uncertain="lsr-ones").class_ids().tolist() == [[1, 1], [0, 0]]
    with pytest.raises(DatasetError):
        read_csv_labels(tmp_path / "labels.csv", uncertain="maybe")
    (tmp_path / "one.csv").write_text("file,label\nimg/a.png,1\nimg/b.png,0\n")
    assert read_csv_labels(tmp_path / "one.csv").task == "binary"


def test_segmentation_pairs_match_by_name(tmp_path):
    _png(tmp_path / "images" / "case1.png", 100)
    _png(tmp_path / "masks" / "case1.png", 255)
    pairs = read_segmentation_pairs(tmp_path / "images", tmp_path / "masks")
    assert pairs.task == "segmentation" and pairs.targets[0].name == "case1.png"
    _png(tmp_path / "images" / "case2.png", 100)
    with pytest.raises(DatasetError, match="without a mask"):
        read_segmentation_pairs(tmp_path / "images", tmp_path / "masks")


def test_dicom_reader_inverts_monochrome1_and_windows():
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    pixels = read_image(path)
    assert pixels.dtype == np.uint8 and pixels.shape == ds.pixel_array.shape
    raw = ds.pixel_array.astype(float)
    low = float(ds.WindowCenter) - float(ds.WindowWidth) / 2
    darkest_raw = np.unravel_index(raw.argmin(), raw.shape)
    assert pixels[darkest_raw] == 255 - round((max(raw.min(), low) - low) / float(ds.WindowWidth) * 255)
    assert pixels[np.unravel_index(raw.argmax(), raw.shape)] < pixels[darkest_raw]  # inverted
    narrow = read_image(path, window=(float(np.median(raw)), 10.0))
    assert np.isin(narrow, [0, 255]).mean() > 0.9  # a 10-unit window saturates almost every pixel


def test_nifti_reader_takes_the_middle_slice(tmp_path):
    import nibabel

    volume = np.zeros((6, 5, 4), np.float32)
    volume[:, :, 2] = np.arange(30).reshape(6, 5)
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), tmp_path / "scan.nii.gz")
    pixels = read_image(tmp_path / "scan.nii.gz")
    assert pixels.shape == (6, 5) and pixels[0, 0] == 0 and pixels[-1, -1] == 255
    assert read_image(tmp_path / "scan.nii.gz", slice_index=0).max() == 0
