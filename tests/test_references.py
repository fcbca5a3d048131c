"""Every model reference reaches the same folder everywhere: protocols on ``hf-hub:`` / ``local-dir:`` references and
on one's own pre-trained folder (no ``--image-size``), and ``SSL_ZOO_SOURCE=hub ssl-zoo pull`` taking the Hub path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_zoo
from ssl_zoo.architectures import get_arch
from ssl_zoo.cli.main import main
from ssl_zoo.evaluation.probe import linear_probe
from ssl_zoo.pretraining.output import TrainingRecord, backbone_tensors, write_model_folder
from ssl_zoo.resolve import RefKind, reference_kind, resolve_folder
from ssl_zoo.store import cache

from .fakehub import FakeHub
from .test_eval_cli import class_folder  # noqa: F401  (fixture)
from .test_eval_support import learnable_samples
from .test_hub import NAME, REPO, endpoint, fake_hub, folder, published_entry  # noqa: F401  (fixtures: the loopback Hub)

SIDE = 32
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


@pytest.fixture(scope="module")
def pretrained_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``RUN_DIR/model`` folder written by the pre-training output path (a ResNet-18 at 32x32)."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet18", num_classes=0)
    record = TrainingRecord("moco-v2", "MoCo v2", "scans/", 1, 8, 2, 1.0, "random", SIDE, MEAN, STD)
    dest = tmp_path_factory.mktemp("run") / "model"
    return write_model_folder(dest, backbone_tensors(net, "resnet18", "moco-v2"), get_arch("resnet18"), record,
                              ["backbone"], "The backbone.")


def test_reference_kinds() -> None:
    assert reference_kind("moco-v2") is RefKind.NAME
    assert reference_kind("hf-hub:org/repo@main") is RefKind.HUB
    assert reference_kind("local-dir:~/x") is RefKind.LOCAL
    assert reference_kind("runs/x/model") is RefKind.PATH and reference_kind(Path("m")) is RefKind.PATH
    assert resolve_folder("local-dir:~/x") == Path("~/x").expanduser()


def test_pretrained_folder_has_its_preprocessing(pretrained_folder: Path) -> None:
    transform = ssl_zoo.transforms(pretrained_folder)
    image = np.full((50, 40), 128, np.uint8)
    expected = (torch.tensor(128 / 255).expand(3) - torch.tensor(MEAN)) / torch.tensor(STD)
    out = transform(image)
    assert out.shape == (3, SIDE, SIDE)
    assert torch.allclose(out[:, 0, 0], expected, atol=1e-5)
    config = json.loads((pretrained_folder / "config.json").read_text())
    assert config["ssl_zoo"]["preprocessing_record"]["input_size"] == [3, SIDE, SIDE]
    assert config["pretrained_cfg"]["mean"] == list(MEAN)


def test_pretrained_folder_is_evaluated_without_image_size(pretrained_folder: Path, tmp_path: Path) -> None:
    record = linear_probe(pretrained_folder, learnable_samples(40), out_dir=tmp_path, C=1.0, progress=False)
    assert record["summary"]["accuracy"]["n"] == 1 and (tmp_path / "probe.json").is_file()


def test_probe_command_on_an_hf_hub_reference(endpoint: FakeHub, class_folder: Path, tmp_path: Path,  # noqa: F811
                                              capsys: pytest.CaptureFixture) -> None:
    code = main(["probe", f"hf-hub:{REPO}", str(class_folder), "--out", str(tmp_path), "--json", "--C", "1",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["model"] == f"hf-hub:{REPO}"


def test_protocols_on_a_local_dir_reference(folder: Path, tmp_path: Path) -> None:
    data = learnable_samples(40)
    record = linear_probe(f"local-dir:{folder}", data, C=1.0, progress=False)
    same = linear_probe(folder, data, C=1.0, progress=False)
    assert record["summary"]["accuracy"]["mean"] == same["summary"]["accuracy"]["mean"]
    assert repr(ssl_zoo.transforms(f"local-dir:{folder}")) == repr(ssl_zoo.transforms(NAME))


def test_source_hub_pull_takes_the_hub_path(endpoint: FakeHub, folder: Path, published_entry: None,  # noqa: F811
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.SOURCE_ENV, "hub")
    monkeypatch.setenv(cache.MIRROR_ENV, "http://127.0.0.1:9")  # upstream must not be needed
    assert main(["pull", NAME, "--quiet"]) == 0
    pulled = cache.model_dir(NAME)
    assert (pulled / "config.json").read_bytes() == (folder / "config.json").read_bytes()
    assert any(path.startswith(REPO) for _, path in endpoint.requests)
