"""Format-faithful miniature layouts of every dataset card: the real folder structure, file names, CSV headers
and label encodings, with 4x4 images and a few patients holding several studies each.

Each builder writes under ``root`` and returns ``root`` (what the user passes as ``--root``).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

CHEXPERT_HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Enlarged Cardiomediastinum",
                   "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation", "Pneumonia",
                   "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"]
COMPETITION = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"]
CELLS = ["1.0", "-1.0", "0.0", ""]
XRAY14 = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia", "Pneumothorax",
          "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
XRAY14_HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
                 "View Position", "OriginalImage[Width", "Height]", "OriginalImagePixelSpacing[x", "y]"]
MIMIC_LABELS = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
                "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
                "Pneumothorax", "Support Devices"]


def image(path: Path, value: int = 100, size: int = 4, rgb: bool = False) -> Path:
    """A tiny image file of the format the suffix names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size, size, 3) if rgb else (size, size), value % 256, np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[object]], gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open(path, "wt", newline="") if gz else path.open("w", newline="")) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def chexpert_row(release: str, part: str, patient: int, study: int, view: int, frontal: bool,
                 index: int) -> list[str]:
    """One CheXpert row: competition findings cycle 1 / -1 / 0 / blank over rows, except laterals, which are
    positive for all of them (so every patient has a positive of each scored finding)."""
    name = f"view{view}_{'frontal' if frontal else 'lateral'}.jpg"
    path = f"{release}/{part}/patient{patient:05d}/study{study}/{name}"
    labels = [CELLS[(index + c) % 4] if (frontal or column not in COMPETITION) else "1.0"
              for c, column in enumerate(CHEXPERT_HEADER[5:])]
    return [path, "Female" if patient % 2 else "Male", str(40 + patient), "Frontal" if frontal else "Lateral",
            "AP" if frontal else "", *labels]


def chexpert(root: Path, release: str = "CheXpert-v1.0-small") -> Path:
    """6 train patients x 2 studies (frontal; study 1 also lateral) and 2 valid patients with 1 study."""
    rows: dict[str, list[list[str]]] = {"train": [], "valid": []}
    index = 0
    for part, patients, studies in (("train", range(1, 7), 2), ("valid", range(64541, 64543), 1)):
        for patient in patients:
            for study in range(1, studies + 1):
                views = [(1, True), (2, False)] if study == 1 else [(1, True)]
                for view, frontal in views:
                    rows[part].append(chexpert_row(release, part, patient, study, view, frontal, index))
                    image(root / rows[part][-1][0], value=index)
                    index += 1
    for part in rows:
        write_csv(root / release / f"{part}.csv", CHEXPERT_HEADER, rows[part])
    return root


def xray14_findings(patient: int, k: int) -> str:
    """Findings of image k of a patient: the 7 single-label classes, "No Finding", a Pneumonia-only row, a pair,
    and otherwise every finding (so each split has positives of all 14)."""
    singles = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumothorax"]
    position = 3 * (patient - 1) + k
    if position < len(singles):
        return singles[position]
    return {7: "No Finding", 8: "Pneumonia", 9: "Effusion|Mass"}.get(position, "|".join(XRAY14))


def chestxray14(root: Path, btl_lists: bool = False, original: bool = False) -> Path:
    """8 patients x 3 images in the archives' images_00N/images/ folders; patients 1-6 train_val, 7-8 test.
    ``original``: the 2017 ``Data_Entry_2017.csv`` with ``Patient Sex`` and a trailing comma on every line."""
    rows = []
    for patient in range(1, 9):
        for k in range(3):
            name = f"{patient:08d}_{k:03d}.png"
            image(root / f"images_00{1 + patient // 5}" / "images" / name, value=patient)
            rows.append([name, xray14_findings(patient, k), str(k), str(patient), "50", "M", "PA", 4, 4, 0.1, 0.1])
    if original:
        header = [("Patient Sex" if h == "Patient Gender" else h) for h in XRAY14_HEADER] + [""]
        write_csv(root / "Data_Entry_2017.csv", header, [r + [""] for r in rows])
    else:
        write_csv(root / "Data_Entry_2017_v2020.csv", XRAY14_HEADER, rows)
    names = [r[0] for r in rows]
    (root / "train_val_list.txt").write_text("\n".join(n for n in names if int(n[:8]) <= 6) + "\n")
    (root / "test_list.txt").write_text("\n".join(n for n in names if int(n[:8]) > 6) + "\n")
    if btl_lists:
        for filename, patients in (("train", (1, 2, 3, 4)), ("val", (5, 6)), ("test", (7, 8))):
            lines = [f"{n} " + " ".join("0" * 14) for n in names if int(n[:8]) in patients]
            (root / f"Xray14_{filename}_official.txt").write_text("\n".join(lines) + "\n")
    return root


def tb_set(root: Path, folder: str, prefix: str, n: int = 10) -> Path:
    """``<folder>/CXR_png/<prefix>_NNNN_L.png`` with L alternating 0/1; Montgomery also gets lung masks."""
    for i in range(1, n + 1):
        name = f"{prefix}_{i:04d}_{i % 2}.png"
        image(root / folder / "CXR_png" / name, value=i)
        if prefix == "MCUCXR":
            for side, cols in (("leftMask", slice(0, 1)), ("rightMask", slice(3, 4))):
                mask = np.zeros((4, 4), np.uint8)
                mask[:, cols] = 255
                (root / folder / "ManualMask" / side).mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask).save(root / folder / "ManualMask" / side / name)
    return root


def shenzhen_lists(root: Path) -> None:
    """BenchmarkTransferLearning's lists: lines ``CHNCXR_NNNN_L.png,L``; 1-6 train, 7-8 valid, 9-10 test."""
    for tag, ids in (("train", range(1, 7)), ("valid", range(7, 9)), ("test", range(9, 11))):
        lines = [f"CHNCXR_{i:04d}_{i % 2}.png,{i % 2}" for i in ids]
        (root / f"ShenzenCXR_{tag}_data.txt").write_text("\n".join(lines) + "\n")


def mimic(root: Path) -> Path:
    """3 subjects x 2 studies x 2 images (PA + LATERAL); subject 3 is the test split."""
    meta, labels, split = [], [], []
    for s in range(3):
        subject = f"1000003{s}"
        for t in range(2):
            study = f"5041426{2 * s + t}"
            labels.append([subject, study] + [CELLS[(s + t + c) % 4] for c in range(14)])
            for v, view in enumerate(("PA", "LATERAL")):
                dicom = f"{s}{t}{v}aa804e-bde0afdd-112c0b34-7bc16630-4e384014"
                meta.append([dicom, subject, study, view])
                split.append([dicom, study, subject, "test" if s == 2 else "train"])
                image(root / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg")
    write_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *MIMIC_LABELS], labels, gz=True)
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", ["dicom_id", "subject_id", "study_id", "ViewPosition"],
              meta, gz=True)
    write_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split, gz=True)
    return root


def bach(root: Path, classes: tuple[str, ...] = ("Benign", "InSitu", "Invasive", "Normal")) -> Path:
    prefixes = {"Benign": "b", "InSitu": "is", "Invasive": "iv", "Normal": "n"}
    for name in classes:
        for i in range(1, 6):
            image(root / "ICIAR2018_BACH_Challenge" / "Photos" / name / f"{prefixes[name]}{i:03d}.tif", i, rgb=True)
    (root / "ICIAR2018_BACH_Challenge" / "WSI").mkdir(parents=True)
    return root


def amd(root: Path) -> Path:
    for folder, letter, n in (("AMD", "A", 4), ("Non-AMD", "N", 6)):
        for i in range(1, n + 1):
            image(root / "Training400" / folder / f"{letter}{i:04d}.jpg", rgb=True)
    return root


def palm(root: Path) -> Path:
    for letter, n in (("P", 3), ("H", 3), ("N", 4)):
        for i in range(1, n + 1):
            image(root / "PALM-Training400" / "PALM-Training400" / f"{letter}{i:04d}.jpg", rgb=True)
    return root


def eyepacs(root: Path, bad_level: bool = False) -> Path:
    """10 train subjects and 5 test subjects, both eyes each; levels cycle 0-4 over subjects."""
    parts = (("train", range(10, 20), "trainLabels.csv"), ("test", range(1, 6), "testLabels.csv"))
    for part, subjects, csv_name in parts:
        rows = []
        for subject in subjects:
            for eye in ("left", "right"):
                image(root / part / f"{subject}_{eye}.jpeg", rgb=True)
                rows.append([f"{subject}_{eye}", str(subject % 5)])
        if bad_level and part == "train":
            rows[0][1] = "5"
        write_csv(root / csv_name, ["image", "level"], rows)
    return root


def write_mha(path: Path, volume: np.ndarray, compressed: bool = False) -> Path:
    """A single-file MetaImage as SimpleITK writes it: text header, ``ElementDataFile = LOCAL``, raw voxels."""
    import zlib

    data = volume.astype("<i2").tobytes()
    data = zlib.compress(data) if compressed else data
    header = ["ObjectType = Image", "NDims = 3", "BinaryData = True", "BinaryDataByteOrderMSB = False",
              f"CompressedData = {compressed}", "TransformMatrix = 1 0 0 0 1 0 0 0 1", "Offset = 0 0 0",
              "ElementSpacing = 0.7 0.7 1.5", "DimSize = " + " ".join(str(d) for d in volume.shape[::-1]),
              "ElementType = MET_SHORT", "ElementDataFile = LOCAL"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(("\n".join(header) + "\n").encode() + data)
    return path


def stoic(root: Path) -> Path:
    """10 patients, one CT each (z, y, x) = (5, 4, 4) in HU; probCOVID alternating."""
    rows = []
    for i in range(10):
        volume = np.linspace(-1200, 400, 5 * 16).reshape(5, 4, 4).astype(np.int16) + i
        write_mha(root / "data" / "mha" / f"{i + 1:04d}.mha", volume, compressed=i % 2 == 1)
        rows.append([str(i + 1).zfill(4), str(i % 2), "0"])
    write_csv(root / "metadata" / "reference.csv", ["PatientID", "probCOVID", "probSevere"], rows)
    return root


def medmnist_npz(root: Path, flag: str, classes: int, multilabel: bool = False, size: int = 28,
                 channels: int = 1) -> Path:
    """``<flag>[_<size>].npz`` with the official keys; 12/4/6 images; labels (N, 1) or (N, L)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 12), ("val", 4), ("test", 6)):
        shape = (n, size, size) + ((3,) if channels == 3 else ())
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.ones((n, classes), np.uint8) if multilabel
                                     else (np.arange(n) % classes)[:, None].astype(np.uint8))
    root.mkdir(parents=True, exist_ok=True)
    path = root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez_compressed(path, **arrays)
    return path


def drive(root: Path, png_masks: bool = False) -> Path:
    """Official numbering: training 21-30, test 01-05; masks NN_manual1.gif (or BTL's .png)."""
    for folder, ids, kind in (("training", range(21, 31), "training"), ("test", range(1, 6), "test")):
        for i in ids:
            image(root / folder / "images" / f"{i:02d}_{kind}.tif", i, rgb=True)
            image(root / folder / "1st_manual" / f"{i:02d}_manual1.{'png' if png_masks else 'gif'}", 255)
            image(root / folder / "mask" / f"{i:02d}_{kind}_mask.gif", 255)
    return root


def image_mask(root: Path) -> Path:
    for i in range(10):
        image(root / "images" / f"case{i:03d}.png", i)
        image(root / "masks" / f"case{i:03d}.png", 255 * (i % 2))
    return root
