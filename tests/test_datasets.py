"""Dataset cards read from format-faithful miniature layouts: counts per split and class, groups never crossing
splits, official lists honoured, and each label convention's targets computed by hand from the files."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ssl_zoo.datasets import all_cards, get_card, layout_tree, read_card
from ssl_zoo.errors import (DatasetLabelError, DatasetLayoutError, DatasetSplitError, OfflineError,
                            UnknownDatasetError)
from ssl_zoo.evaluation.data import read_dataset
from ssl_zoo.evaluation.file_readers import read_csv_labels
from ssl_zoo.evaluation.report import report_trials
from ssl_zoo.evaluation.splits import label_fraction, make_splits

from . import dataset_layouts as layouts


def _no_group_crosses(parts):
    seen = {name: set(part.groups.tolist()) for name, part in parts.items()}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"]) and not (seen["val"] & seen["test"])


def _chexpert_cells(root):
    rows = {}
    for part in ("train", "valid"):
        with (root / "CheXpert-v1.0-small" / f"{part}.csv").open() as handle:
            for row in csv.DictReader(handle):
                rows[row["Path"].split("/", 1)[1]] = row
    return rows


@pytest.fixture(scope="module")
def chexpert_root(tmp_path_factory):
    return layouts.chexpert(tmp_path_factory.mktemp("chexpert"))


@pytest.mark.parametrize("convention, uncertain_range", [("u-ones", (1, 1)), ("u-zeros", (0, 0)),
                                                         ("lsr-ones", (0.55, 0.85)), ("lsr-zeros", (0, 0.3))])
def test_chexpert_uncertain_policies_by_hand(chexpert_root, convention, uncertain_range):
    data = read_card("chexpert", chexpert_root, convention=convention)
    rows = _chexpert_cells(chexpert_root)
    assert data.task == "multilabel" and data.classes == tuple(layouts.CHEXPERT_HEADER[5:]) and len(data) == 22
    for path, target in zip(data.items, data.targets):
        row = rows[str(path.relative_to(chexpert_root / "CheXpert-v1.0-small"))]
        for column, value in zip(data.classes, target):
            cell = row[column]
            if cell == "-1.0":
                assert uncertain_range[0] <= value <= uncertain_range[1]
            else:
                assert value == (1.0 if cell == "1.0" else 0.0)  # blank and 0.0 are negative
    assert data.card["convention"] == convention and data.card["scored"] == layouts.COMPETITION
    assert data.metric == "auc" and data.card["version"] == 1


def test_chexpert_official_split_patient_groups_and_grouped_val(chexpert_root):
    data = read_card("chexpert", chexpert_root)
    assert (data.split == "train").sum() == 18 and (data.split == "test").sum() == 4
    assert data.groups[0] == "patient00001" and data.meta["study"][0] == "patient00001/study1"
    parts, index = make_splits(data, seed=0)
    assert len(parts["test"]) == 4 and {g for g in parts["test"].groups} == {"patient64541", "patient64542"}
    assert len(parts["train"]) + len(parts["val"]) == 18 and len(parts["val"]) > 0
    _no_group_crosses(parts)
    assert parts["val"].card == data.card and parts["val"].split.tolist() == ["train"] * len(parts["val"])


def test_chexpert_pleural_effusion_many_to_one_and_frontal_filter(chexpert_root):
    rows = _chexpert_cells(chexpert_root)
    for convention, positive in (("pleural-effusion", {"1.0"}), ("pleural-effusion-fewshot", {"1.0", "-1.0"})):
        data = read_card("chexpert", chexpert_root, convention=convention, views="frontal")
        assert data.task == "binary" and data.targets.dtype == np.int64
        expected = [rows[str(p.relative_to(chexpert_root / "CheXpert-v1.0-small"))] for p in data.items]
        assert all(r["Frontal/Lateral"] == "Frontal" for r in expected) and len(data) == 14
        assert data.targets.tolist() == [int(r["Pleural Effusion"] in positive) for r in expected]
        assert set(data.meta["view"]) == {"Frontal"} and data.card["views"] == "frontal"
    with pytest.raises(Exception, match="hard 0/1 targets"):
        read_card("chexpert", chexpert_root, convention="pleural-effusion", uncertain="lsr-ones")


def test_chexpert_competition_columns_and_parent_or_release_root(chexpert_root):
    a = read_card("chexpert", chexpert_root, convention="competition-5", uncertain="ones")
    b = read_card("chexpert", chexpert_root / "CheXpert-v1.0-small", convention="competition-5", uncertain="ones")
    assert a.classes == ("Cardiomegaly", "Edema", "Consolidation", "Atelectasis", "Pleural Effusion")
    assert np.array_equal(a.targets, b.targets) and a.targets.shape == (22, 5)


def test_chexpert_bad_values_missing_files_and_no_positive_split(tmp_path):
    root = layouts.chexpert(tmp_path / "a")
    csv_path = root / "CheXpert-v1.0-small" / "train.csv"
    csv_path.write_text(csv_path.read_text().replace(",1.0\n", ",2.0\n", 1))
    with pytest.raises(DatasetLabelError, match="2.0"):
        read_card("chexpert", root)
    with pytest.raises(DatasetLayoutError, match="train: missing file train.csv; chexpert expects"):
        read_card("chexpert", layouts.chexpert(tmp_path / "b") / "CheXpert-v1.0-small" / "train")
    (tmp_path / "b" / "CheXpert-v1.0-small" / "valid.csv").unlink()
    with pytest.raises(DatasetLayoutError, match="valid.csv.*chexpert expects under --root"):
        read_card("chexpert", tmp_path / "b")
    root = layouts.chexpert(tmp_path / "c")
    valid = root / "CheXpert-v1.0-small" / "valid.csv"
    rows = list(csv.reader(valid.open()))
    edema = rows[0].index("Edema")
    for row in rows[1:]:
        row[edema] = "0.0"
    layouts.write_csv(valid, rows[0], rows[1:])
    with pytest.raises(DatasetSplitError, match="test split of chexpert has no positive of \\['Edema'\\]"):
        make_splits(read_card("chexpert", root, convention="u-ones"), seed=0)


def test_chestxray14_official_lists_patient_groups_and_multihot(tmp_path):
    root = layouts.chestxray14(tmp_path)
    data = read_card("chestx-ray14", root)
    names = [p.name for p in data.items]
    test_list = set((root / "test_list.txt").read_text().split())
    assert [s == "test" for s in data.split] == [n in test_list for n in names] and len(data) == 24
    assert data.groups.tolist() == [str(int(n[:8])) for n in names]
    by_name = dict(zip(names, data.targets))
    assert by_name["00000003_001.png"].tolist() == [0.0] * 14  # No Finding
    assert np.flatnonzero(by_name["00000003_002.png"]).tolist() == [6]  # Pneumonia
    assert np.flatnonzero(by_name["00000004_000.png"]).tolist() == [2, 4]  # Effusion|Mass
    assert np.flatnonzero(by_name["00000001_000.png"]).tolist() == [0]
    parts, _ = make_splits(data, seed=1)
    assert len(parts["test"]) == 6 and len(parts["train"]) + len(parts["val"]) == 18
    _no_group_crosses(parts)


def test_chestxray14_original_csv_with_trailing_comma(tmp_path):
    original = read_card("chestx-ray14", layouts.chestxray14(tmp_path / "a", original=True))
    current = read_card("chestx-ray14", layouts.chestxray14(tmp_path / "b"))
    assert original.targets.tolist() == current.targets.tolist() and original.split.tolist() == current.split.tolist()
    (tmp_path / "a" / "test_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="missing file test_list.txt"):
        read_card("chestx-ray14", tmp_path / "a")


def test_chestxray14_btl_lists_and_seven_class_subset(tmp_path):
    root = layouts.chestxray14(tmp_path, btl_lists=True)
    data = read_card("chestx-ray14", root)
    assert [int((data.split == s).sum()) for s in ("train", "val", "test")] == [12, 6, 6]
    seven = read_card("chestx-ray14", root, convention="seven-class")
    assert seven.task == "multiclass" and len(seven) == 7 and seven.targets.tolist() == list(range(7))
    assert seven.classes[6] == "Pneumothorax" and seven.items[6].name == "00000003_000.png"


@pytest.mark.parametrize("card, folder, prefix", [("shenzhen", "ChinaSet_AllFiles", "CHNCXR"),
                                                   ("montgomery", "MontgomerySet", "MCUCXR")])
def test_tuberculosis_label_from_file_name_suffix(tmp_path, card, folder, prefix):
    root = layouts.tb_set(tmp_path, folder, prefix)
    data = read_card(card, root)
    assert data.task == "binary" and data.targets.tolist() == [int(p.stem[-1]) for p in data.items]
    assert data.targets.sum() == 5 and data.split is None and data.groups[0] == f"{prefix}_0001"
    parts, _ = make_splits(data, seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [6, 2, 2]
    _no_group_crosses(parts)


def test_tuberculosis_findings_convention_and_release_folder_as_root(tmp_path):
    root = layouts.tb_set(tmp_path, "ChinaSet_AllFiles", "CHNCXR")
    findings = ["normal", "1 stage of TB", "normal", "Normal", "PTB in the left upper field"] * 2
    rows = [[f"CHNCXR_{i:04d}_{i % 2}.png", "male", "40yrs", findings[i - 1]] for i in range(1, 11)]
    layouts.write_csv(root / "shenzhen_metadata.csv", ["study_id", "sex", "age", "findings"], rows)
    data = read_card("shenzhen", root, convention="findings")
    assert [p.name for p in data.items] == [r[0] for r in rows]
    assert data.targets.tolist() == [0, 1, 0, 1, 1] * 2  # exactly "normal" is negative, as upstream compares
    inner = read_card("shenzhen", root / "ChinaSet_AllFiles")
    assert len(inner) == 10 and inner.targets.tolist() == read_card("shenzhen", root).targets.tolist()


def test_shenzhen_btl_lists_are_used_as_given(tmp_path):
    root = layouts.tb_set(tmp_path, "ChinaSet_AllFiles", "CHNCXR")
    layouts.shenzhen_lists(root)
    data = read_card("shenzhen", root)
    expected = {i: "train" if i <= 6 else "val" if i <= 8 else "test" for i in range(1, 11)}
    assert data.split.tolist() == [expected[int(p.stem.split("_")[1])] for p in data.items]


def test_mimic_cxr_joins_study_labels_official_split_and_frontal(tmp_path):
    root = layouts.mimic(tmp_path)
    data = read_card("mimic-cxr", root, convention="u-zeros")
    assert len(data) == 12 and data.classes == tuple(layouts.MIMIC_LABELS)
    assert (data.split == "test").sum() == 4 and set(data.groups[data.split == "test"]) == {"10000032"}
    # subject s, study t, label c: CELLS[(s + t + c) % 4]; U-Zeros makes only "1.0" positive
    for item, target in zip(data.items, data.targets):
        s, t = int(item.parent.parent.name[-1]), int(item.parent.name[-1]) % 2
        expected = [float(layouts.CELLS[(s + t + c) % 4] == "1.0") for c in range(14)]
        assert target.tolist() == expected
    frontal = read_card("mimic-cxr", root, views="frontal")
    assert len(frontal) == 6 and set(frontal.meta["view"]) == {"PA"}


def test_bach_ordinal_grades_follow_the_card_not_the_alphabet(tmp_path):
    data = read_card("bach", layouts.bach(tmp_path))
    order = {"n": 0, "b": 1, "is": 2, "iv": 3}
    assert data.targets.tolist() == [order[p.stem.rstrip("0123456789")] for p in data.items]
    assert data.classes == ("Normal", "Benign", "InSitu", "Invasive") and len(data) == 20
    with pytest.raises(DatasetLabelError, match="InSitu"):
        read_card("bach", layouts.bach(tmp_path / "empty", classes=("Benign", "Invasive", "Normal")))


def test_ichallenge_amd_folders_and_pm_myopia_merge(tmp_path):
    amd = read_card("ichallenge-amd", layouts.amd(tmp_path / "amd"))
    assert amd.targets.tolist() == [int(p.parent.name == "AMD") for p in amd.items] and amd.targets.sum() == 4
    root = layouts.palm(tmp_path / "palm")
    merged = read_card("ichallenge-pm", root)
    assert merged.targets.tolist() == [int(p.name[0] in "PH") for p in merged.items] and merged.targets.sum() == 6
    official = read_card("ichallenge-pm", root, convention="pm-only")
    assert official.targets.tolist() == [int(p.name[0] == "P") for p in official.items]
    assert official.classes == ("non-PM", "PM")
    (root / "PALM-Training400" / "PALM-Training400" / "X0001.jpg").write_bytes(
        (root / "PALM-Training400" / "PALM-Training400" / "P0001.jpg").read_bytes())
    with pytest.raises(DatasetLabelError, match="'X'"):
        read_card("ichallenge-pm", root)


def test_eyepacs_official_split_subject_groups_and_grades(tmp_path):
    data = read_card("eyepacs", layouts.eyepacs(tmp_path))
    assert (data.split == "train").sum() == 20 and (data.split == "test").sum() == 10
    assert data.targets.tolist() == [int(p.stem.split("_")[0]) % 5 for p in data.items]
    assert data.metric == "mean_per_class_accuracy" and set(data.meta["eye"]) == {"left", "right"}
    parts, _ = make_splits(data, seed=2)
    _no_group_crosses(parts)
    assert all(len(parts[k]) % 2 == 0 for k in parts)  # both eyes of a subject stay together
    with pytest.raises(DatasetLabelError, match="'5'"):
        read_card("eyepacs", layouts.eyepacs(tmp_path / "bad", bad_level=True))


def test_stoic_middle_axial_slice_in_the_hu_window(tmp_path):
    data = read_card("stoic", layouts.stoic(tmp_path))
    assert data.targets.tolist() == [i % 2 for i in range(10)] and data.groups[0] == "0001"
    for i in (0, 1):  # raw and zlib-compressed MetaImage
        volume = np.linspace(-1200, 400, 80).reshape(5, 4, 4).astype(np.int16) + i
        plane = np.clip(volume[2].astype(float), -1000, 250)
        expected = ((plane + 1000) / 1250 * 255).astype(np.uint8)  # the study truncates (astype), no rounding
        assert np.array_equal(data.load(i), expected)


@pytest.mark.filterwarnings("ignore:.*the official medmnist 3.x file")
def test_medmnist_official_splits_task_and_nearest_upsampling(tmp_path):
    layouts.medmnist_npz(tmp_path, "pathmnist", 9, channels=3)
    layouts.medmnist_npz(tmp_path, "chestmnist", 14, multilabel=True)
    layouts.medmnist_npz(tmp_path, "breastmnist", 2, size=64)
    with pytest.warns(UserWarning, match="official medmnist 3.x file .*89996"):
        path = read_card("medmnist/pathmnist", tmp_path)
    assert path.card["official_counts"] is False and path.task == "multiclass" and len(path.classes) == 9
    assert [int((path.split == s).sum()) for s in ("train", "val", "test")] == [12, 4, 6]
    parts, _ = make_splits(path, seed=0)
    assert [len(parts[k]) for k in ("train", "val", "test")] == [12, 4, 6]
    with np.load(tmp_path / "pathmnist.npz") as npz:
        first = npz["train_images"][0]
    assert np.array_equal(path.load(0), np.repeat(np.repeat(first, 8, axis=0), 8, axis=1))  # PIL NEAREST x8
    chest = read_card("chestmnist", tmp_path)
    assert chest.task == "multilabel" and chest.targets.shape == (22, 14)
    breast = read_card("breastmnist", tmp_path, size=64)
    assert breast.task == "binary" and breast.load(0).shape == (64, 64) and breast.card["file"] == "breastmnist_64.npz"


def test_medmnist_missing_file_says_where_and_download_checks_md5(tmp_path, monkeypatch):
    with pytest.raises(DatasetLayoutError, match="zenodo.org/records/10519652/files/dermamnist.npz.*md5 0744692d"):
        read_card("dermamnist", tmp_path)
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError, match="put dermamnist.npz"):
        read_card("dermamnist", tmp_path, download=True)


@pytest.mark.filterwarnings("ignore:.*the official medmnist 3.x file")
def test_medmnist_download_checks_the_md5(tmp_path, monkeypatch):
    import dataclasses
    import hashlib

    from ssl_zoo.datasets.readers import medmnist as reader
    from ssl_zoo.errors import ChecksumError

    from .loopback import LoopbackServer

    served = layouts.medmnist_npz(tmp_path / "zenodo", "breastmnist", 2)
    md5 = hashlib.md5(served.read_bytes()).hexdigest()
    with LoopbackServer(tmp_path / "zenodo") as server:
        monkeypatch.setattr(reader, "ZENODO", server.url + "/{file}")
        with pytest.raises(ChecksumError, match="differs from MedMNIST's 750601b1"):
            read_card("breastmnist", tmp_path / "data", download=True, progress=False)
        assert not (tmp_path / "data" / "breastmnist.npz").exists()  # nothing kept
        card = dataclasses.replace(get_card("breastmnist"), files={"breastmnist.npz": md5})
        path = reader.download(card, tmp_path / "data", 28, progress=False)
    assert path.read_bytes() == served.read_bytes()
    assert len(read_card("breastmnist", tmp_path / "data")) == 22


def test_medmnist_cards_match_the_medmnist_package():
    from medmnist import INFO

    tasks = {"multi-label, binary-class": "multilabel", "binary-class": "binary", "multi-class": "multiclass",
             "ordinal-regression": "multiclass"}
    flags = [f for f in INFO if not f.endswith("3d")]
    assert {c.flag for c in all_cards().values() if c.flag} == set(flags)
    for flag in flags:
        card, info = get_card(flag), INFO[flag]
        assert card.task == tasks[info["task"]] and card.licence == info["license"]
        assert card.classes == tuple(info["label"][str(i)] for i in range(len(info["label"])))
        assert card.files[f"{flag}.npz"] == info["MD5"] and card.files[f"{flag}_224.npz"] == info["MD5_224"]
        assert dict(card.counts) == info["n_samples"]


def test_segmentation_cards(tmp_path):
    lungs = read_card("montgomery-lungs", layouts.tb_set(tmp_path / "m", "MontgomerySet", "MCUCXR"))
    union = lungs.targets[0].load()
    assert union[:, 0].all() and union[:, 3].all() and not union[:, 1:3].any() and lungs.task == "segmentation"
    drive = read_card("drive", layouts.drive(tmp_path / "d"))
    assert (drive.split == "test").sum() == 5 and drive.targets[0].name.endswith("_manual1.gif")
    assert all(t.name[:2] == i.name[:2] for i, t in zip(drive.items, drive.targets))
    parts, _ = make_splits(drive, seed=0)
    assert len(parts["test"]) == 5 and len(parts["val"]) == 2 and parts["train"].metric == "dice"
    png = read_card("drive", layouts.drive(tmp_path / "p", png_masks=True))
    assert png.targets[0].suffix == ".png"
    generic = read_card("image-mask", layouts.image_mask(tmp_path / "g"))
    assert len(generic) == 10 and generic.card["name"] == "image-mask"


def test_generic_csv_group_and_split_columns(tmp_path):
    for i in range(12):
        layouts.image(tmp_path / f"{i}.png", i)
    rows = [[f"{i}.png", i % 2, f"p{i // 3}", ""] for i in range(12)]
    layouts.write_csv(tmp_path / "grouped.csv", ["path", "label", "group", "note"], rows)
    data = read_csv_labels(tmp_path / "grouped.csv", label_columns=["label"])
    assert data.groups.tolist() == [f"p{i // 3}" for i in range(12)] and data.split is None
    parts, _ = make_splits(data, seed=3, test=0.25, val=0.34)
    _no_group_crosses(parts)
    layouts.write_csv(tmp_path / "split.csv", ["path", "label", "split"],
                      [[f"{i}.png", i % 2, ("train", "val", "test")[i % 3]] for i in range(12)])
    parts, index = make_splits(read_dataset(tmp_path / "split.csv"), seed=0)
    assert index["test"] == [2, 5, 8, 11] and index["val"] == [1, 4, 7, 10]


def test_label_fraction_keeps_whole_training_groups():
    groups = np.repeat(np.arange(10), 3).astype(str)
    kept = label_fraction(np.arange(100, 130), 0.2, seed=4, groups=groups)
    first_two = [str(g) for g in np.random.default_rng(4).permutation(10)[:2]]  # seeded order of the sorted ids
    assert kept.tolist() == [100 + i for i in range(30) if groups[i] in first_two]


def test_results_record_and_splits_file_name_the_card(tmp_path):
    root = layouts.tb_set(tmp_path / "s", "ChinaSet_AllFiles", "CHNCXR")
    parts, index = make_splits(read_dataset("shenzhen", root=root), seed=0)
    runs = [{"test": {"auc": 0.5}, "train_indices": list(range(len(parts["train"])))}]
    record = report_trials("linear-probe", "m", parts, index, runs, seed=0, label_fraction=1.0, metrics=("auc",),
                           out_dir=tmp_path / "out", filename="probe.json")
    assert record["dataset"]["name"] == "shenzhen" and record["dataset"]["convention"] == "suffix"
    splits = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert splits["dataset"]["version"] == 1 and set(splits["groups"]["test"]) == set(parts["test"].groups)


def test_cards_info_tree_and_errors():
    tree = layout_tree(get_card("chexpert"))
    assert tree.splitlines()[:3] == ["<root>/", "└── CheXpert-v1.0-small/", "    ├── train.csv"]
    with pytest.raises(UnknownDatasetError, match="did you mean chexpert"):
        get_card("chexpret")
    assert all(not c.files for c in all_cards().values() if c.registration)
    with pytest.raises(Exception, match="card only"):
        read_dataset("some.csv", convention="u-ones")
    with pytest.raises(Exception, match="chexpert is a dataset card: give --root DIR"):
        read_dataset("chexpert")


def test_card_schema_rejects_unknown_keys_and_bad_values():
    from ssl_zoo.datasets.schema import parse_card
    from ssl_zoo.errors import RegistryError

    table = {"title": "t", "version": 1, "release": "r", "reader": "image-mask", "task": "segmentation",
             "modality": "m", "classes": ["f"], "metric": "dice", "group_key": "image", "split_rule": "s",
             "layout": ["images/a.png"], "url": "", "licence": "l", "registration": False, "how_to_get": "h",
             "conventions": [{"name": "c", "description": "d"}]}
    assert parse_card("x", table).intensity.recipe == "auto"
    for bad, message in (({"colour": 1}, "unknown key"), ({"metric": "f1"}, "metric must be"),
                         ({"intensity": {"recipe": "window:5,1"}}, "needs low < high"),
                         ({"intensity": {"window": [1, 2]}}, "unknown key"),
                         ({"conventions": [{"name": "c", "description": "d", "uncertain": "maybe"}]}, "uncertain"),
                         ({"files": {"a.npz": "0"}, "registration": True}, "no downloadable files")):
        with pytest.raises(RegistryError, match=message):
            parse_card("x", {**table, **bad})


def test_options_that_do_not_apply_are_errors(tmp_path):
    root = layouts.amd(tmp_path)
    for option, message in (({"views": "frontal"}, "no view filter"), ({"uncertain": "ones"}, "no uncertain"),
                            ({"size": 64}, "MedMNIST cards only"), ({"convention": "u-ones"}, "no convention")):
        with pytest.raises(Exception, match=message):
            read_card("ichallenge-amd", root, **option)


def test_grouped_split_by_hand():
    from ssl_zoo.evaluation.splits import grouped_indices

    groups = np.array(["p3", "p1", "p1", "p2", "p4", "p4", "p4", "p5", "p2", "p6"])
    got = grouped_indices(groups, seed=7, test=0.2, val=0.25)
    names = sorted(set(groups))  # the rule: a seeded permutation of the sorted group ids ...
    order = [names[i] for i in np.random.default_rng(7).permutation(len(names))]
    expected = {"test": [], "val": [], "train": []}
    for name in order:  # ... whole groups to test until round(0.2 * 10) images, then val until round(8 * 0.25)
        part = "test" if len(expected["test"]) < 2 else "val" if len(expected["val"]) < 2 else "train"
        expected[part] += [i for i in range(10) if groups[i] == name]
    assert {k: sorted(v) for k, v in expected.items()} == {k: v.tolist() for k, v in got.items()}


def test_medmnist_download_keeps_a_users_file_that_fails_the_md5(tmp_path):
    from ssl_zoo.datasets.readers import medmnist as reader
    from ssl_zoo.errors import ChecksumError

    mine = layouts.medmnist_npz(tmp_path, "breastmnist", 2)  # e.g. a medmnist 2.x file the user put there
    before = mine.read_bytes()
    with pytest.raises(ChecksumError, match="differs from MedMNIST's 750601b1.*kept"):
        reader.download(get_card("breastmnist"), tmp_path, 28, progress=False)
    assert mine.read_bytes() == before
