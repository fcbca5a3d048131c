"""A new user's first hour (issue 16): errors that name the fix, checks before work, output that fits."""

from __future__ import annotations

import os
import stat
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest

import ssl_zoo
from ssl_zoo.cli import main as cli
from ssl_zoo.errors import DownloadError, HubError, MissingExtraError
from ssl_zoo.store import cache, transfer
from ssl_zoo.store.atomic import write_text_atomic

from .test_eval_support import r18_folder  # noqa: F401  (fixture)


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- errors that name the fix ---------------------------------------------------------------------------------

def test_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl_zoo.evaluation import metrics

    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)  # as if scikit-learn were not installed
    with pytest.raises(MissingExtraError, match=r'pip install "ssl_zoo\[eval\]"') as info:
        metrics.classification_metrics(np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]]), "multiclass")
    assert isinstance(info.value, ModuleNotFoundError) and "\n" not in str(info.value)


def test_cli_names_the_extra_of_an_unwrapped_import(capsys: pytest.CaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(args: object) -> int:
        raise ModuleNotFoundError("No module named 'segmentation_models_pytorch'", name="segmentation_models_pytorch")

    monkeypatch.setattr(cli, "build_parser", lambda: _parser_running(fail))
    code, _, err = run(capsys, "anything")
    assert code == 1
    one_line(err, 'pip install "ssl_zoo[medical]"')


def _parser_running(func):
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("x")
    parser.set_defaults(func=func)
    return parser


def test_failed_download_chains_one_short_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "RETRY_BASE_DELAY", 0.0)
    monkeypatch.setenv("SSL_ZOO_MIRROR", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(DownloadError) as info:
        ssl_zoo.load("supervised-r18", progress=False)
    printed = "".join(traceback.format_exception(info.value))
    assert printed.count("direct cause") + printed.count("During handling") == 1, printed
    assert isinstance(info.value.__cause__, OSError)
    assert info.value.__cause__.__traceback__ is None


def test_dataset_that_is_a_file_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    data = tmp_path / "file.bin"
    data.write_bytes(b"\0" * 10)
    code, _, err = run(capsys, "probe", "supervised-r18", str(data))
    assert code == 1
    one_line(err, "file.bin", "class folders")


def test_mirror_export_into_a_file_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    code, _, err = run(capsys, "mirror", "export", str(target))
    assert code == 1
    one_line(err, "is a file, not a folder")
    assert target.read_text() == "root:x:0:0\n"


def test_bundle_install_of_a_random_file_is_one_whole_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(3000))
    code, _, err = run(capsys, "bundle", "install", str(junk))
    assert code == 1
    line = one_line(err, "not a readable bundle", "ssl-zoo bundle create", "nothing was installed")
    assert not line.rstrip().endswith(":")


def test_segment_without_images_does_not_print_an_empty_list(tmp_path: Path) -> None:
    from ssl_zoo.errors import DatasetError

    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetError) as info:
        ssl_zoo.read_dataset(tmp_path / "images", masks=tmp_path / "masks")
    assert "[]" not in str(info.value) and "no PNG" in str(info.value)


def test_hub_error_for_a_users_repo_does_not_suggest_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubError) as info:
        ssl_zoo.load("hf-hub:my-lab/my-model", progress=False)
    assert "SSL_ZOO_SOURCE" not in str(info.value) and "repository id" in str(info.value)


def test_plain_folder_mirror_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_ZOO_MIRROR", str(tmp_path / "mirror") + "/")
    assert cache.mirror_base() == (tmp_path / "mirror").resolve().as_uri()


def test_publish_offline_blames_offline_mode_not_the_token(capsys: pytest.CaptureFixture,
                                                            monkeypatch: pytest.MonkeyPatch, r18_folder: Path) -> None:
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    code, _, err = run(capsys, "publish", str(r18_folder), "--namespace", "my-lab")
    assert code == 1
    line = one_line(err, "offline mode is on")
    assert "HF_TOKEN" not in line


def test_pull_texts(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = run(capsys, "pull")
    assert code == 2 and "not both" not in err and "--all" in err
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    monkeypatch.delenv("SSL_ZOO_QUIET")
    code, _, err = run(capsys, "pull", "supervised-r18")
    assert code == 1 and "pulling 1 entry," in err


# --- checks before work ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["probe", "supervised-r18", ".", "--trials", "0"],
    ["probe", "supervised-r18", ".", "--label-fraction", "2"],
    ["probe", "supervised-r18", ".", "--label-fraction", "0"],
    ["pull", "supervised-r18", "--jobs", "0"],
    ["pull", "supervised-r18", "--jobs", "-3"],
    ["compare", "supervised-r18", "--data", ".", "--label-fractions", "0.1", "1.5"],
    ["pretrain", "--method", "simclr", "--data", ".", "--out", "x", "--epochs", "0"],
])
def test_bad_numbers_are_usage_errors_before_any_work(capsys: pytest.CaptureFixture, argv: list[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl_zoo.pulling

    monkeypatch.setattr(ssl_zoo.pulling, "pull_many", lambda *a, **k: pytest.fail("work started"))
    code, _, err = run(capsys, *argv)
    assert code == 2 and "must be" in err


# --- files and output -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "config.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == mode


def test_list_fits_100_columns_and_explains_status(capsys: pytest.CaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_ZOO_QUIET")
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, err = run(capsys, "list")
    assert code == 0 and max(map(len, out.splitlines())) < 100
    assert "…" in out and "converted = model folder ready" in " ".join(err.split())
    code, wide, _ = run(capsys, "list", "--wide")
    assert max(map(len, wide.splitlines())) > max(map(len, out.splitlines())) and "…" not in wide
