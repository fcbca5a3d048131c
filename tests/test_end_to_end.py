"""Every registry entry: pulled from the loopback mirror, converted, loaded by ssl_zoo and by timm ``local-dir:``,
and compared tensor by tensor with what its fixture put in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ssl_zoo
from ssl_zoo.store import cache
from ssl_zoo.architectures import ArchKind, get_arch
from ssl_zoo.registry import get_entry

from .conftest import ALL_NAMES
from .fixtures import VARIANTS, build


def assert_same_tensors(actual: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(actual) == set(expected)
    different = [k for k in expected if not torch.equal(actual[k].to(expected[k].dtype), expected[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.mark.parametrize("name", ALL_NAMES)
def test_pull_convert_load(name: str, mirror, fixtures) -> None:
    expected = fixtures[name].expected
    folder = ssl_zoo.pull(name)

    assert folder == cache.model_dir(name)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert_same_tensors(ssl_zoo.load_state_dict(name), expected)
    spec = get_arch(get_entry(name).arch)
    if spec.kind is not ArchKind.TIMM:  # U-Nets and 3-D models: not timm backbones, see test_medical.py
        check_dense_entry(name, spec, expected)
        return

    model = ssl_zoo.load(name)
    assert not model.training
    assert_same_tensors(model.state_dict(), expected)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, spec.num_features)

    import timm  # the folder is also a timm `local-dir:` model, with the same tensors

    assert_same_tensors(timm.create_model(f"local-dir:{folder}", pretrained=True).state_dict(), expected)


def check_dense_entry(name: str, spec, expected: dict[str, torch.Tensor]) -> None:
    """A U-Net or UNet3D entry: its backbone is the encoder, ``task="segmentation"`` the whole network."""
    head = "segmentation_head.0.weight" if spec.kind is ArchKind.SMP_UNET else "out_tr.final_conv.weight"
    classes = expected[head].shape[0]
    encoder_prefix = "encoder." if spec.kind is ArchKind.SMP_UNET else "down_tr"
    strip = len("encoder.") if spec.kind is ArchKind.SMP_UNET else 0
    backbone = ssl_zoo.load(name)
    assert not backbone.training
    assert_same_tensors(backbone.state_dict(), {k[strip:]: v for k, v in expected.items() if k.startswith(encoder_prefix)})
    whole = ssl_zoo.load(name, task="segmentation", classes=classes)
    assert not whole.training
    assert_same_tensors(whole.state_dict(), expected)
    x = torch.randn(2, 3, 64, 64) if spec.kind is ArchKind.SMP_UNET else torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        assert backbone(x).shape == (x.shape[0], spec.num_features)
        assert whole(x).shape == (x.shape[0], classes, *x.shape[2:])


def test_model_folder_contract(mirror) -> None:
    from safetensors import safe_open

    folder = ssl_zoo.pull("swav")
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "resnet50" and config["num_classes"] == 0
    assert config["pretrained_cfg"]["std"] == [0.228, 0.224, 0.225]  # SwAV's own red std
    assert config["ssl_zoo"]["converter_family"] == "swav"
    with safe_open(folder / "model.safetensors", framework="pt") as fh:
        meta = fh.metadata()
    assert meta["format"] == "pt" and meta["name"] == "swav"
    assert meta["source_sha256"] == config["ssl_zoo"]["source_sha256"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nc-4.0\nlibrary_name: timm\n")
    assert "Non-commercial" in card and config["ssl_zoo"]["weights_sha256"] in card


def test_new_head_and_grayscale_stem(mirror, fixtures) -> None:
    model = ssl_zoo.load("moco-v2", num_classes=14, in_chans=1)
    expected_stem = fixtures["moco-v2"].expected["conv1.weight"].sum(dim=1, keepdim=True)
    torch.testing.assert_close(model.conv1.weight.detach(), expected_stem)
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 14)
    import timm

    data = timm.data.resolve_model_data_config(model)  # what a user's transform is built from
    assert data["input_size"][0] == 1 and data["mean"] == [sum((0.485, 0.456, 0.406)) / 3]
    assert len(data["std"]) == 1


def test_features_only_gives_stage_maps(mirror) -> None:
    model = ssl_zoo.load("supervised-d121", features_only=True)
    shapes = [tuple(t.shape[1:2]) for t in model(torch.randn(1, 3, 64, 64))]
    assert shapes == [(64,), (256,), (512,), (1024,), (1024,)]


def test_loading_a_local_folder_needs_no_registry(mirror, tmp_path: Path) -> None:
    folder = ssl_zoo.pull("barlow-twins")
    copy = tmp_path / "my-model"
    copy.mkdir()
    for f in folder.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    a, b = ssl_zoo.load_state_dict(folder), ssl_zoo.load_state_dict(f"local-dir:{copy}")
    assert_same_tensors(a, b)


OTHER_VARIANTS = [(n, v) for n, vs in VARIANTS.items() for v in vs if v != "default"]


@pytest.mark.parametrize(("name", "variant"), OTHER_VARIANTS)
def test_every_known_layout_variant_converts(name: str, variant: str, tmp_path: Path) -> None:
    fixture = build(name, tmp_path, variant)
    folder = ssl_zoo.convert_file(name, fixture.path)
    assert_same_tensors(ssl_zoo.load_state_dict(folder), fixture.expected)


def test_timm_alone_loads_a_folder_without_ssl_zoo(mirror) -> None:
    import subprocess
    import sys

    folder = ssl_zoo.pull("pcl-v2")
    code = (
        "import sys, timm, torch, safetensors.torch as st\n"
        f"folder = {str(folder)!r}\n"
        "model = timm.create_model('local-dir:' + folder, pretrained=True)\n"
        "stored = st.load_file(folder + '/model.safetensors')\n"
        "assert all(torch.equal(model.state_dict()[k], v) for k, v in stored.items())\n"
        "assert len(stored) == len(model.state_dict())\n"
        "print('ssl_zoo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"
