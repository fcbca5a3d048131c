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
    assert code == 1 and "pulling 1 entry\n" in err  # not "1 entry, 4 at a time"
    code, _, err = run(capsys, "pull", "supervised-r18", "supervised-r50")
    assert code == 1 and "pulling 2 entries, 2 at a time" in err


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
    assert "user-supplied" in out.splitlines()[[line.split()[0] for line in out.splitlines()].index("dira")]
    code, wide, _ = run(capsys, "list", "--wide")
    assert max(map(len, wide.splitlines())) > max(map(len, out.splitlines())) and "…" not in wide


# --- found in the first-hour walk-through (after issue 16) -----------------------------------------------------

@pytest.mark.parametrize("content", [os.urandom(3000), b"hello\n"])
def test_convert_of_a_junk_file_names_that_file_and_what_to_check(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                                   content: bytes) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(content)
    code, _, err = run(capsys, "convert", "moco-v2", "--from-file", str(junk))
    assert code == 1
    line = one_line(err, str(junk), "ssl-zoo info moco-v2")
    assert "staging" not in line and "pull again" not in line and "URL" not in line


@pytest.mark.parametrize("kind", ["missing", "data folder"])
def test_a_model_that_is_no_model_folder_says_what_model_takes(tmp_path: Path, kind: str) -> None:
    from ssl_zoo.errors import ModelFolderError

    model = tmp_path / "nothing-here"
    if kind == "data folder":
        (model / "a").mkdir(parents=True)
    with pytest.raises(ModelFolderError) as info:
        ssl_zoo.load(model)
    line = one_line(str(info.value), str(model), "registry name", "hf-hub:")
    assert "again" not in line


@pytest.mark.parametrize("which", ["images", "masks"])
def test_segmentation_folders_that_are_files_are_one_line(tmp_path: Path, which: str) -> None:
    from ssl_zoo.errors import DatasetError

    folders = {"images": tmp_path / "images", "masks": tmp_path / "masks"}
    for folder in folders.values():
        folder.mkdir()
    folders[which] = tmp_path / "file.bin"
    folders[which].write_bytes(b"\0")
    with pytest.raises(DatasetError) as info:
        ssl_zoo.read_dataset(folders["images"], masks=folders["masks"])
    one_line(str(info.value), "file.bin", "is not a folder")


def test_an_image_argument_that_is_a_folder_says_so(tmp_path: Path) -> None:
    from ssl_zoo.errors import DatasetError
    from ssl_zoo.evaluation.images import read_image

    with pytest.raises(DatasetError) as info:
        read_image(tmp_path)
    one_line(str(info.value), "is a folder", "*.png")


def test_bundle_install_of_a_missing_file_says_what_to_give(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run(capsys, "bundle", "install", str(tmp_path / "models.tar"))
    assert code == 1
    one_line(err, "models.tar is not a file", "ssl-zoo bundle create")
    assert not (cache.home() / "models").exists() or not any((cache.home() / "models").iterdir())


def test_offline_hint_for_a_metric_network_is_one_that_works(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl_zoo.errors import OfflineError
    from ssl_zoo.evaluation.perceptual import load_lpips

    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        load_lpips("alex", progress=False)
    expected = cache.download_path("lpips-alex", "alexnet-owt-7be5be79.pth")
    line = one_line(str(info.value), f"put it at {expected}")
    assert "ssl-zoo convert lpips-alex" not in line  # not a registry entry: `convert` refuses the name


@pytest.mark.parametrize("command", ["saliency", "reconstruct"])
def test_a_bad_later_image_stops_before_any_work(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path, command: str) -> None:
    from PIL import Image

    from ssl_zoo.evaluation import perceptual, reconstruction, saliency

    good = tmp_path / "good.png"
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(good)
    (tmp_path / "bad.png").write_text("not an image")
    for module in (saliency, reconstruction):
        monkeypatch.setattr(module, "load_backbone", lambda *a, **k: pytest.fail("the model was loaded first"))
    monkeypatch.setattr(perceptual, "load_lpips", lambda *a, **k: pytest.fail("LPIPS was pulled first"))
    code, _, err = run(capsys, command, "supervised-r18", str(good), str(tmp_path / "bad.png"),
                       "--out", str(tmp_path / "out"))
    assert code == 1
    one_line(err, "bad.png")


def test_fewshot_with_too_few_classes_stops_before_features_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl_zoo.errors import DatasetError
    from ssl_zoo.evaluation import fewshot
    from ssl_zoo.evaluation.data import Samples

    monkeypatch.setattr(fewshot, "load_backbone", lambda *a, **k: pytest.fail("features before the check"))
    labels = np.repeat([0, 1], 12)
    data = Samples(np.zeros((24, 8, 8), np.uint8), labels, "binary", ("a", "b"))
    with pytest.raises(DatasetError) as info:
        fewshot.fewshot("supervised-r18", data, k_shot=50)
    one_line(str(info.value), "needs 5 classes (--n-way)", "more than 50 images", "0 such of 2 classes",
             "largest: 12 images")


def test_pretrain_into_a_file_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    out = tmp_path / "notes.txt"
    out.write_text("mine\n")
    code, _, err = run(capsys, "pretrain", "--method", "simclr", "--data", str(tmp_path / "data"), "--out", str(out))
    assert code == 1
    one_line(err, "notes.txt is a file, not a folder")
    assert out.read_text() == "mine\n"


def test_pretrain_of_an_unknown_method_names_the_method(tmp_path: Path) -> None:
    from ssl_zoo.errors import UnknownMethodError

    with pytest.raises(UnknownMethodError, match="unknown pre-training method 'nope'"):
        ssl_zoo.pretrain("nope", tmp_path, tmp_path / "run")


@pytest.mark.parametrize("command", [["probe", "supervised-r18", "DATA"], ["saliency", "supervised-r18", "IMAGE.png"]])
def test_an_out_that_is_a_file_stops_before_any_work(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path, command: list[str]) -> None:
    from PIL import Image

    from ssl_zoo.evaluation import probe, saliency

    for module in (probe, saliency):
        monkeypatch.setattr(module, "load_backbone", lambda *a, **k: pytest.fail("work started"))
    for label in ("a", "b"):
        (tmp_path / "DATA" / label).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "DATA" / label / "x.png")
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "IMAGE.png")
    out = tmp_path / "results.txt"
    out.write_text("mine\n")
    argv = [str(tmp_path / a) if a[0].isupper() else a for a in command]
    code, _, err = run(capsys, *argv, "--out", str(out))
    assert code == 1
    one_line(err, "results.txt is a file, not a folder")
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("protocol, options", [
    ("linear_probe", {"label_fraction": 2}), ("finetune", {"trials": 0}), ("segment", {"label_fraction": 0}),
    ("fewshot", {}), ("invariance", {}), ("linear_probe", {"path": True}),
])
def test_protocol_functions_check_their_inputs_before_loading(monkeypatch: pytest.MonkeyPatch, protocol: str,
                                                               options: dict) -> None:
    from ssl_zoo.errors import DatasetError
    import ssl_zoo.resolve
    from ssl_zoo.evaluation.data import Samples

    monkeypatch.setattr(ssl_zoo.resolve, "resolve_folder", lambda *a, **k: pytest.fail("the model was loaded first"))
    samples = Samples(np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, 1]), "binary", ("a", "b"))
    data = "chest_xrays/" if options.pop("path", protocol in ("fewshot", "invariance")) else samples
    with pytest.raises(DatasetError) as info:
        getattr(ssl_zoo, protocol)("supervised-r18", data, **options)
    one_line(str(info.value))
    if isinstance(data, str):
        assert "ssl_zoo.read_dataset('chest_xrays/')" in str(info.value)


def test_help_says_a_plain_folder_is_a_mirror(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "pull", "--help")
    assert code == 0 and "SSL_ZOO_MIRROR (http(s):// or file:// base, or a folder)" in out


def test_segment_does_not_warn_about_the_presets_own_normalisation(r18_folder: Path) -> None:  # noqa: F811
    import warnings

    import torch

    from ssl_zoo.evaluation.segment import build_unet

    unet, _ = build_unet(r18_folder, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the guard's InputWarning would raise here
        unet.eval()(torch.rand(1, 3, 64, 64))  # [0, 1] pixels, as benchmark-transfer's "none" feeds them


@pytest.mark.parametrize("options", [{"features_only": True, "num_classes": 3}, {"num_classes": -1}])
def test_load_options_that_would_be_ignored_are_refused(r18_folder: Path, options: dict) -> None:  # noqa: F811
    from ssl_zoo.errors import OptionError

    with pytest.raises(OptionError, match="num_classes cannot apply") as info:
        ssl_zoo.load(r18_folder, **options)
    one_line(str(info.value))


def test_readme_option_error_comes_before_any_download(monkeypatch: pytest.MonkeyPatch) -> None:
    from ssl_zoo.errors import OptionError

    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")  # dira has no file here: the README's line must still say why
    with pytest.raises(OptionError, match="features_only cannot apply"):
        ssl_zoo.load("dira", task="segmentation", features_only=True)


def test_a_card_that_needs_registration_gives_its_url(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run(capsys, "datasets", "download", "chexpert", "--root", str(tmp_path))
    assert code == 1
    one_line(err, "at the URL", "URL: https://stanfordmlgroup.github.io/competitions/chexpert/")
