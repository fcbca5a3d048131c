"""`ssl-zoo datasets` and a protocol run on a dataset card through ``--root``."""

from __future__ import annotations

import json

import pytest

from ssl_zoo.cli.main import main

from . import dataset_layouts as layouts
from .test_eval_support import r18_folder  # noqa: F401  (fixture)


def test_datasets_list_and_info_draw_the_layout(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["NAME", "TASK", "CLASSES"] and len(lines) == 2 + 25
    assert any(line.startswith("chexpert ") and "registration" in line for line in lines)
    assert main(["datasets", "info", "eyepacs"]) == 0
    out = capsys.readouterr().out
    assert "├── trainLabels.csv" in out and "grades-5:" in out and "ssl_zoo never downloads it" in out
    assert main(["datasets", "info", "stoic", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["intensity"]["recipe"] == "window:-1000,250" and card["layout_tree"].startswith("<root>/")


def test_datasets_download_refuses_agreement_licences_and_says_where_offline(tmp_path, capsys, monkeypatch):
    assert main(["datasets", "download", "chexpert", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-zoo: error: chexpert is not downloadable") and "\n" not in err
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    assert main(["datasets", "download", "octmnist", "--root", str(tmp_path), "--size", "64"]) == 1
    err = capsys.readouterr().err.strip()
    assert "offline: put octmnist_64.npz (md5 e229e9440236b774d9f0dfef9d07bdaf" in err and str(tmp_path) in err


@pytest.mark.filterwarnings("ignore:.*the official medmnist 3.x file")
def test_probe_on_a_card_records_the_card(r18_folder, tmp_path, capsys):
    layouts.medmnist_npz(tmp_path / "data", "breastmnist", 2)
    code = main(["probe", str(r18_folder), "breastmnist", "--root", str(tmp_path / "data"), "--image-size", "32",
                 "--C", "1", "--out", str(tmp_path / "out"), "--json", "-q"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["sizes"] == {"train": 12, "val": 4, "test": 6}
    assert record["dataset"]["name"] == "breastmnist" and record["dataset"]["convention"] == "official"
    splits = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert splits["dataset"]["file"] == "breastmnist.npz" and splits["dataset"]["version"] == 1


def test_card_errors_are_one_line(r18_folder, tmp_path, capsys):
    assert main(["probe", str(r18_folder), "chexpert", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert "missing file train.csv; chexpert expects under --root" in err and "\n" not in err
    assert main(["segment", str(r18_folder), str(tmp_path)]) == 2
