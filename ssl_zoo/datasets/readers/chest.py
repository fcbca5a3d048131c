"""Chest X-ray layouts: CheXpert's CSVs, ChestX-ray14's Data_Entry + official lists, MIMIC-CXR-JPG's CSVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DatasetError, DatasetLabelError, DatasetLayoutError, DatasetSplitError
from ...evaluation.data import Samples, multilabel_targets
from ..schema import Card
from .common import (Request, base_folder, check_files, classes_of, encode, read_rows, require, require_columns,
                     samples)

CHEXPERT_RELEASES = ("CheXpert-v1.0-small", "CheXpert-v1.0")
CHEXPERT_OFFICIAL = (("train.csv", "train"), ("valid.csv", "test"))  # the official test labels are hidden
XRAY14_ENTRY = ("Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
XRAY14_LISTS = (("train_val_list.txt", "train"), ("test_list.txt", "test"))
MIMIC_SPLITS = {"train": "train", "validate": "val", "test": "test"}
FRONTAL_MIMIC = ("PA", "AP")


def targets_for(card: Card, request: Request, cells: list[list[str]], where: str) -> tuple[np.ndarray, str]:
    """Multilabel soft labels, or the single column of a many-to-one binary task (uncertain -> policy).

    Raises:
        DatasetError: A soft-label policy for a binary task, or an unknown value.
    """
    task = request.convention.task or card.task
    if task != "multilabel" and request.policy.startswith("lsr"):
        raise DatasetError(f"{card.name}: the {request.convention.name} task has hard 0/1 targets; use "
                           "--uncertain ones or zeros (soft labels need a multilabel convention)")
    values = multilabel_targets(cells, request.policy or "zeros", request.seed, where)
    if task == "multilabel":
        return values, task
    hard = values[:, 0].astype(np.int64)
    if not (hard == 1).any() or not (hard == 0).any():
        raise DatasetLabelError(f"{where}: the {request.convention.name} task has a class with no image")
    return hard, task


def read_chexpert(card: Card, request: Request) -> Samples:
    """CheXpert: ``train.csv`` -> train, official ``valid.csv`` -> test; groups = patient; meta study/view."""
    release = next((base_folder(request.root, r) for r in CHEXPERT_RELEASES
                    if (base_folder(request.root, r) / "train.csv").is_file()), request.root)
    labels = request.convention.labels or classes_of(card, request.convention)
    paths, cells, split, groups, study, view = [], [], [], [], [], []
    for filename, part in CHEXPERT_OFFICIAL:
        csv_path = require(card, release / filename, request.root)
        rows = read_rows(csv_path)
        require_columns(csv_path, rows, ["Path", "Frontal/Lateral", *labels])
        for row in rows:
            if request.view_filter == "frontal" and row["Frontal/Lateral"] != "Frontal":
                continue
            relative = Path(*Path(row["Path"]).parts[1:])  # drop the release folder the CSV names
            paths.append(release / relative)
            cells.append([row[c] for c in labels])
            split.append(part)
            groups.append(relative.parts[1])
            study.append("/".join(relative.parts[1:3]))
            view.append(row["Frontal/Lateral"])
    check_files(paths, f"{release}/*.csv", request.progress)
    targets, task = targets_for(card, request, cells, str(release))
    return samples(card, request, paths, targets, split=split, groups=groups, meta={"study": study, "view": view},
                   task=task)


def _xray14_index(root: Path) -> dict[str, Path]:
    """Image name -> path over ``images/`` and the archives' ``images_0NN/`` or ``images_0NN/images/`` folders."""
    folders = [root / "images", *sorted(root.glob("images_*")), *sorted(root.glob("images_*/images"))]
    return {p.name: p for folder in folders if folder.is_dir() for p in folder.iterdir()}


def _list_split(card: Card, root: Path) -> dict[str, str]:
    """Image name -> split from the card's paper lists (BenchmarkTransferLearning's) when all are present, else
    from the official ``train_val_list.txt`` / ``test_list.txt``."""
    paper = tuple(zip(card.lists, ("train", "val", "test")))
    lists = paper if paper and all((root / f).is_file() for f, _ in paper) else XRAY14_LISTS
    split = {}
    for filename, part in lists:
        for line in require(card, root / filename, root).read_text().split("\n"):
            if line.strip():
                split[line.split()[0]] = part
    return split


def read_chestxray14(card: Card, request: Request) -> Samples:
    """ChestX-ray14: Data_Entry labels, the official lists as given, groups = patient (first 8 digits)."""
    root = request.root
    entry = next((root / f for f in XRAY14_ENTRY if (root / f).is_file()), root / XRAY14_ENTRY[0])
    rows = read_rows(require(card, entry, root))
    require_columns(entry, rows, ["Image Index", "Finding Labels", "View Position"])
    split_of, index = _list_split(card, root), _xray14_index(root)
    convention = request.convention
    keep = [r for r in rows if not convention.labels or r["Finding Labels"] in convention.labels]
    unlisted = [r["Image Index"] for r in keep if r["Image Index"] not in split_of]
    if unlisted:
        raise DatasetSplitError(f"{entry}: {len(unlisted)} image(s) in no split list (e.g. {unlisted[0]}); use the "
                           "train_val_list.txt and test_list.txt of the same release")
    missing = [r["Image Index"] for r in keep if r["Image Index"] not in index]
    if missing:
        raise DatasetLayoutError(f"{root}: {len(missing)} image(s) of {entry.name} not found (e.g. {missing[0]}); "
                                 "put the PNGs in images/ or keep the archives' images_0NN/images/ folders")
    names = [r["Image Index"] for r in keep]
    targets = _xray14_targets(card, request, [r["Finding Labels"] for r in keep], str(entry))
    return samples(card, request, [index[n] for n in names], targets, split=[split_of[n] for n in names],
                   groups=[int(n[:8]) for n in names], meta={"view": [r["View Position"] for r in keep]})


def _xray14_targets(card: Card, request: Request, findings: list[str], where: str) -> np.ndarray:
    """14-dim multi-hot (``No Finding`` = all zero), or the single-label class ids of a subset convention."""
    classes = classes_of(card, request.convention)
    names = [set(f.split("|")) - {"No Finding"} for f in findings]
    unknown = sorted(set().union(*names) - set(card.classes))
    if unknown:
        raise DatasetLabelError(f"{where}: unknown finding(s) {unknown[:5]}; expected names from {list(card.classes)}")
    if (request.convention.task or card.task) == "multiclass":
        return encode(card, request.convention, findings, where)
    return np.asarray([[float(c in n) for c in classes] for n in names], dtype=np.float32)


def _mimic_csv(card: Card, root: Path, kind: str, columns: list[str]) -> list[dict[str, str]]:
    """The rows of ``mimic-cxr-2.0.0-<kind>.csv[.gz]``, which must have ``columns``."""
    stem = f"mimic-cxr-2.0.0-{kind}.csv"
    path = root / f"{stem}.gz" if (root / f"{stem}.gz").is_file() else root / stem
    rows = read_rows(require(card, path, root))
    require_columns(path, rows, columns)
    return rows


def read_mimic(card: Card, request: Request) -> Samples:
    """MIMIC-CXR-JPG: per-image metadata joined with per-study labels; official split; groups = subject."""
    root = request.root
    labels = request.convention.labels or classes_of(card, request.convention)
    columns = {"chexpert": ["subject_id", "study_id", *labels], "split": ["dicom_id", "split"],
               "metadata": ["dicom_id", "subject_id", "study_id", "ViewPosition"]}
    tables = {kind: _mimic_csv(card, root, kind, needed) for kind, needed in columns.items()}
    study_labels = {(r["subject_id"], r["study_id"]): [r[c] for c in labels] for r in tables["chexpert"]}
    split_of = {r["dicom_id"]: MIMIC_SPLITS.get(r["split"], r["split"]) for r in tables["split"]}
    unsplit = [r["dicom_id"] for r in tables["metadata"] if r["dicom_id"] not in split_of]
    if unsplit:
        raise DatasetSplitError(f"{root}: {len(unsplit)} image(s) of the metadata CSV are not in the split CSV (e.g. "
                           f"{unsplit[0]}); use the three CSVs of the same release")
    rows = [r for r in tables["metadata"] if (r["subject_id"], r["study_id"]) in study_labels
            and (request.view_filter == "all" or r["ViewPosition"] in FRONTAL_MIMIC)]
    paths = [root / "files" / f"p{r['subject_id'][:2]}" / f"p{r['subject_id']}" / f"s{r['study_id']}"
             / f"{r['dicom_id']}.jpg" for r in rows]
    check_files(paths, "mimic-cxr-2.0.0-metadata.csv", request.progress)
    cells = [study_labels[(r["subject_id"], r["study_id"])] for r in rows]
    targets, task = targets_for(card, request, cells, str(root))
    return samples(card, request, paths, targets, split=[split_of[r["dicom_id"]] for r in rows],
                   groups=[r["subject_id"] for r in rows], task=task,
                   meta={"study": [r["study_id"] for r in rows], "view": [r["ViewPosition"] for r in rows]})
