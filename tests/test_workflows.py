"""Whole user workflows through the command line: a parallel pull with one failure, and an air-gapped site."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_zoo.store import cache
from ssl_zoo.cli import main as cli
from ssl_zoo.modelfolder.files import is_complete

from .conftest import mirror_path


def test_parallel_pull_reports_each_entry_and_fails_on_any(mirror, fixtures, capsys) -> None:
    mirror.serve_html(mirror_path(fixtures["pirl"]))
    assert cli.main(["pull", "moco-v2", "pirl", "swav", "--jobs", "3", "--json"]) == 1
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["moco-v2"]["status"] == rows["swav"]["status"] == "converted"
    assert rows["pirl"]["status"] == "failed" and "HTML" in rows["pirl"]["error"]
    assert is_complete(cache.model_dir("swav")) and not cache.model_dir("pirl").exists()

    mirror.reset()
    assert cli.main(["pull", "moco-v2", "pirl"]) == 0
    table = capsys.readouterr().out
    assert "moco-v2  cached" in table and "pirl     converted" in table


def test_air_gapped_site_installs_from_an_exported_mirror(mirror, fixtures, tmp_path: Path, monkeypatch, capsys) -> None:
    assert cli.main(["pull", "moco-v3", "spark"]) == 0
    export = tmp_path / "usb-stick"
    assert cli.main(["mirror", "export", str(export)]) == 0
    assert sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file()) == [
        "moco-v3/r-50-300ep.pth.tar", "spark/resnet50_1kpretrained_timm_style.pth"]

    monkeypatch.setenv("SSL_ZOO_HOME", str(tmp_path / "hospital-cache"))
    monkeypatch.setenv("SSL_ZOO_MIRROR", export.as_uri())
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    capsys.readouterr()
    assert cli.main(["pull", "moco-v3", "spark"]) == 0
    assert cli.main(["verify"]) == 0
    assert mirror.count(mirror_path(fixtures["moco-v3"])) == 1  # only the first, online pull touched the server


@pytest.mark.parametrize("flag", ["--quiet", None])
def test_convert_from_file_prints_the_folder(fixtures, capsys, flag) -> None:
    argv = ["convert", "barlow-twins", "--from-file", str(fixtures["barlow-twins"].path)]
    assert cli.main(argv + ([flag] if flag else [])) == 0
    assert capsys.readouterr().out.strip() == str(cache.model_dir("barlow-twins"))
