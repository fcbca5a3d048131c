"""MONAI networks, 2-D -> 3-D inflation and MONAI transforms (issue 15); the input guard is in test_guard.py.

Model folders are converted from torchvision-layout files whose weights are realistic (BatchNorm statistics measured
on the activations they normalise), so features are well scaled and equality with timm means something.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssl_zoo
from ssl_zoo.architectures.inflate import inflate_kernel, inflate_state_dict
from ssl_zoo.converters.convert import convert_checkpoint
from ssl_zoo.converters.rules import apply_rules
from ssl_zoo.errors import FrameworkError, MissingExtraError, OptionError, SslZooWarning
from ssl_zoo.architectures import ArchKind
from ssl_zoo.frameworks.monai import KEY_RULES, MonaiOptions, check_monai_options
from ssl_zoo.frameworks.monai_folder import save_monai
from ssl_zoo.registry import get_entry

from .fixtures import build

monai = pytest.importorskip("monai")

ENTRY = {"resnet18": "supervised-r18", "resnet50": "supervised-r50", "densenet121": "supervised-d121"}
NETWORK = {"resnet18": "ResNet", "resnet50": "ResNet", "densenet121": "DenseNet121"}


def realistic_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A timm ``arch`` (classifier included, as torchvision publishes it) with BatchNorm statistics calibrated on
    one batch of smooth random images and affine parameters drawn around trained ranges."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, num_classes=10)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.3, 1.0)
            module.bias.data.normal_(0.0, 0.1)
            module.momentum = None  # cumulative average over the calibration batch
            module.reset_running_stats()
    images = F.interpolate(torch.rand(4, 3, 16, 16), size=64, mode="bilinear")
    with torch.no_grad():
        model.train()(images)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A converted model folder per 2-D architecture, from a realistic torchvision-layout file."""
    root = tmp_path_factory.mktemp("monai-folders")
    out = {}
    for arch, name in ENTRY.items():
        path = root / f"{name}.pth"
        torch.save(realistic_state(arch), path)
        out[arch] = convert_checkpoint(get_entry(name), path, "0" * 64, dest=root / name)
    return out


def batch(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- 2-D networks: MONAI's outputs are timm's ----------------------------------------------------------------


@pytest.mark.parametrize("arch", list(ENTRY))
def test_monai_network_gives_timm_features(arch: str, folders) -> None:
    model = ssl_zoo.load(folders[arch], framework="monai", guard=False)
    reference = ssl_zoo.load(folders[arch], guard=False)
    assert type(model) is getattr(monai.networks.nets, NETWORK[arch])
    x = batch(2, 3, 64, 64)
    with torch.no_grad():
        features, expected = model(x), reference(x)
    assert features.shape == expected.shape and expected.abs().max() > 0.1
    torch.testing.assert_close(features, expected, rtol=1e-5, atol=1e-5)


def test_hub_and_local_dir_references_load_in_monai(folders, monkeypatch: pytest.MonkeyPatch) -> None:
    from .fakehub import FakeHub

    expected = ssl_zoo.load(folders["resnet18"], framework="monai", guard=False).state_dict()
    with FakeHub() as server:
        server.add_folder("lab/r18", folders["resnet18"])
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        for ref in ("hf-hub:lab/r18", f"local-dir:{folders['resnet18']}"):
            state = ssl_zoo.load(ref, framework="monai", guard=False).state_dict()
            assert state.keys() == expected.keys() and all(torch.equal(state[k], v) for k, v in expected.items())


def test_tf_same_padding_of_foreign_checkpoints_is_kept_in_monai(folders, tmp_path: Path) -> None:
    import shutil

    from ssl_zoo.architectures.tf_same import same_padding_layers

    folder = Path(shutil.copytree(folders["resnet50"], tmp_path / "byol-like"))
    config = json.loads((folder / "config.json").read_text())
    config["ssl_zoo"]["parity"] = {"same_padding_layers": list(same_padding_layers("byol"))}  # as BYOL's folder
    (folder / "config.json").write_text(json.dumps(config))
    model = ssl_zoo.load(folder, framework="monai", guard=False)
    assert type(model.maxpool).__name__ == "TfSameMaxPool2d" and type(model.conv1).__name__ == "TfSameConv2d"
    x = batch(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ssl_zoo.load(folder, guard=False)(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(model(x), ssl_zoo.load(folder, exact=False, guard=False)(x), rtol=1e-5, atol=1e-5)


def test_new_head_is_fresh_and_the_trunk_still_loaded_strictly(folders) -> None:
    model = ssl_zoo.load(folders["densenet121"], framework="monai", num_classes=5, guard=False)
    assert model(batch(1, 3, 64, 64)).shape == (1, 5)
    stored = ssl_zoo.load_state_dict(folders["densenet121"])
    assert torch.equal(model.state_dict()["features.denseblock4.denselayer16.layers.conv2.weight"],
                       stored["features.denseblock4.denselayer16.conv2.weight"])


def test_key_rules_map_torchvision_densenet_names_onto_monai_exactly(folders) -> None:
    tensors, report = apply_rules(ssl_zoo.load_state_dict(folders["densenet121"]), KEY_RULES["DenseNet121"],
                                  "classifier")
    with torch.device("meta"):
        network = monai.networks.nets.DenseNet121(spatial_dims=2, in_channels=3, out_channels=1)
    expected = {k for k in network.state_dict() if not k.startswith("class_layers.out.")}
    assert set(tensors) == expected
    assert "features.denseblock1.denselayer1.layers.conv1.weight" in tensors
    assert report.steps == ["renamed 696 keys (MONAI's dense layer keeps its layers in a Sequential named layers)"]
    assert KEY_RULES["ResNet"] == ()  # MONAI's ResNet uses torchvision's names


def test_one_channel_stem_matches_timm(folders) -> None:
    model = ssl_zoo.load(folders["resnet18"], framework="monai", in_chans=1, guard=False)
    reference = ssl_zoo.load(folders["resnet18"], in_chans=1, guard=False)
    x = batch(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_flexible_unet_encoder_gives_timm_feature_maps(arch: str, folders) -> None:
    model = ssl_zoo.load(folders[arch], framework="monai", task="segmentation", classes=2, guard=False)
    stages = ssl_zoo.load(folders[arch], features_only=True, guard=False)
    assert type(model) is monai.networks.nets.FlexibleUNet
    x = batch(1, 3, 64, 64)
    with torch.no_grad():
        maps, expected = model.encoder(x), stages(x)
        assert model(x).shape == (1, 2, 64, 64)
    assert len(maps) == len(expected) == 5
    for got, want in zip(maps, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_unet_entry_gives_its_encoder_to_flexible_unet_and_says_the_decoder_is_fresh(tmp_path: Path) -> None:
    fixture = build("dira", tmp_path / "files")
    folder = convert_checkpoint(get_entry("dira"), fixture.path, "0" * 64, dest=tmp_path / "dira")
    with pytest.warns(SslZooWarning, match="only the encoder is pre-trained"):
        model = ssl_zoo.load(folder, framework="monai", task="segmentation", guard=False)
    state = model.state_dict()
    for key, value in ssl_zoo.load_state_dict(folder).items():
        if key.startswith("encoder."):
            assert torch.equal(state[key], value), key
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the encoder as a backbone loses nothing: no warning
        backbone = ssl_zoo.load(folder, framework="monai", guard=False)
    assert torch.equal(backbone.state_dict()["layer4.2.conv3.weight"], state["encoder.layer4.2.conv3.weight"])


def test_networks_monai_lacks_and_options_that_do_not_apply_are_refused(folders) -> None:
    with pytest.raises(FrameworkError, match="FlexibleUNet has no densenet121 encoder"):
        ssl_zoo.load(folders["densenet121"], framework="monai", task="segmentation")
    with pytest.raises(FrameworkError, match="framework='monai'"):
        ssl_zoo.load(folders["resnet18"], spatial_dims=3)
    with pytest.raises(OptionError, match="features_only"):
        ssl_zoo.load(folders["resnet18"], framework="monai", features_only=True)
    with pytest.raises(FrameworkError, match="unknown framework"):
        ssl_zoo.load(folders["resnet18"], framework="keras")
    with pytest.raises(OptionError, match="exact"):
        ssl_zoo.load(folders["resnet18"], framework="monai", spatial_dims=3, exact=True)
    with pytest.raises(OptionError, match="classes"):  # the timm path's option checks apply as well
        ssl_zoo.load(folders["resnet18"], framework="monai", classes=2)
    with pytest.raises(FrameworkError, match="UNet3D has no MONAI counterpart"):
        check_monai_options(ArchKind.UNET3D, MonaiOptions())


def test_missing_monai_names_the_extra(folders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "monai", None)  # any import of monai now raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "ssl_zoo\[monai\]"') as info:
        ssl_zoo.load(folders["resnet18"], framework="monai")
    assert isinstance(info.value, ImportError)
    with pytest.raises(MissingExtraError, match=r'pip install "ssl_zoo\[monai\]"'):
        ssl_zoo.transforms("supervised-r18", framework="monai")


# --- 2-D -> 3-D inflation ----------------------------------------------------------------------------------------


def test_inflated_kernel_is_the_2d_kernel_repeated_over_its_depth_divided_by_it() -> None:
    kernel = batch(4, 2, 3, 3)
    inflated = inflate_kernel(kernel)
    assert inflated.shape == (4, 2, 3, 3, 3)
    for depth in range(3):
        assert torch.equal(inflated[:, :, depth], kernel / 3)
    assert torch.equal(inflate_kernel(kernel[..., :1, :1])[:, :, 0], kernel[..., :1, :1])  # 1x1: depth 1
    # by hand: on a volume whose slices are all equal, each depth position sees k equal slices
    image = batch(1, 2, 9, 9, seed=1)
    volume = image.unsqueeze(2).expand(-1, -1, 5, -1, -1)
    out3d = F.conv3d(volume, inflated, padding=(0, 1, 1))
    out2d = F.conv2d(image, kernel, padding=1)
    for depth in range(out3d.shape[2]):
        torch.testing.assert_close(out3d[:, :, depth], out2d, rtol=1e-5, atol=1e-6)


def test_inflation_copies_everything_but_convolution_kernels(folders) -> None:
    weights = ssl_zoo.load_state_dict(folders["resnet18"])
    inflated = inflate_state_dict(weights)
    assert inflated.keys() == weights.keys()
    assert inflated["conv1.weight"].shape == (64, 3, 7, 7, 7)
    assert inflated["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1, 1)
    for key in ("bn1.running_var", "layer4.1.bn2.weight", "layer1.0.bn1.num_batches_tracked"):
        assert torch.equal(inflated[key], weights[key])


def _layer4(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    maps = []
    handle = model.layer4.register_forward_hook(lambda module, args, out: maps.append(out))
    with torch.no_grad():
        model(x)
    handle.remove()
    return maps[0]


def test_volume_of_equal_slices_gives_the_2d_features_where_the_receptive_field_is_inside(folders) -> None:
    # ResNet-18's last stage sees 435 slices (7x7x7/2 stem): a 480-slice volume has depth positions whose receptive
    # field lies inside it (equal to 2-D) and border ones that see the zero padding (the stated exception)
    model2d = ssl_zoo.load(folders["resnet18"], framework="monai", guard=False)
    model3d = ssl_zoo.load(folders["resnet18"], framework="monai", spatial_dims=3, guard=False)
    assert model3d.conv1.weight.shape == (64, 3, 7, 7, 7) and model3d.conv1.stride == (2, 2, 2)
    image = batch(1, 3, 32, 32)
    expected = _layer4(model2d, image)[:, :, 0, 0]
    maps = _layer4(model3d, image.unsqueeze(2).expand(-1, -1, 480, -1, -1))[:, :, :, 0, 0]
    assert maps.shape[-1] == 15
    torch.testing.assert_close(maps[..., 7], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(maps[..., 0], expected, rtol=1e-4, atol=1e-4)  # the border sees zero slices


@pytest.mark.parametrize("arch", list(ENTRY))
def test_3d_networks_run_on_a_small_cube(arch: str, folders) -> None:
    model = ssl_zoo.load(folders[arch], framework="monai", spatial_dims=3, guard=False)
    with torch.no_grad():
        features = model(batch(1, 3, 32, 32, 32))
    assert features.shape == (1, {"resnet18": 512, "resnet50": 2048, "densenet121": 1024}[arch])
    assert torch.isfinite(features).all()


def test_3d_flexible_unet_segments_a_cube(folders) -> None:
    model = ssl_zoo.load(folders["resnet18"], framework="monai", spatial_dims=3, task="segmentation", classes=2,
                         guard=False)
    assert model.encoder.conv1.weight.shape == (64, 3, 7, 7, 7)
    with torch.no_grad():
        assert model(batch(1, 3, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


def test_saved_inflated_model_says_so_and_loads_back(folders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = ssl_zoo.load(folders["resnet18"], framework="monai", spatial_dims=3, guard=False)
    dest = save_monai(model, tmp_path / "r18-3d")
    card = (dest / "README.md").read_text()
    config = json.loads((dest / "config.json").read_text())
    assert "Inflated from 2-D weights to 3-D" in card and "divided by k" in card
    assert config["ssl_zoo"]["inflated"].startswith("I3D") and config["ssl_zoo"]["source"]["name"] == "supervised-r18"
    again = ssl_zoo.load(dest, framework="monai", guard=False)
    x = batch(1, 3, 32, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
    with pytest.raises(FrameworkError, match="framework='monai'"):
        ssl_zoo.load(dest)
    with pytest.raises(FrameworkError, match="loads as saved"):
        ssl_zoo.load(dest, framework="monai", num_classes=3)
    monkeypatch.chdir(dest)  # the card's "MONAI alone" recipe, run as written
    recipe = card.split("```python")[2].split("```")[0]
    scope: dict = {}
    exec(recipe, scope)  # noqa: S102  our own card's code
    with torch.no_grad():
        torch.testing.assert_close(scope["model"].eval()(x), model(x), rtol=0, atol=0)
    flat = save_monai(ssl_zoo.load(folders["resnet18"], framework="monai", guard=False), tmp_path / "r18-2d")
    assert "Not inflated" in (flat / "README.md").read_text()


# --- transforms -------------------------------------------------------------------------------------------------


def _dicom(name: str) -> np.ndarray:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    pixels = ds.pixel_array
    if ds.PhotometricInterpretation == "MONOCHROME1":  # inverted as the reader of a file must (preprocessing doc)
        pixels = pixels.max() - pixels
    if "RescaleSlope" in ds:  # CT: Hounsfield units
        pixels = pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    return pixels


@pytest.mark.parametrize(("name", "in_chans"), [("moco-cxr-d121", None), ("mimic-chexpert-lr-0.1", None),
                                                ("supervised-r50", None), ("moco-cxr-r18", 1)])
def test_monai_transforms_equal_ssl_zoo_on_a_dicom_radiograph(name: str, in_chans: int | None) -> None:
    pixels = _dicom("RG1_UNCR.dcm")  # uint16, 1955 x 1841
    expected = ssl_zoo.transforms(name, in_chans=in_chans)(pixels)
    got = ssl_zoo.transforms(name, in_chans=in_chans, framework="monai")(pixels[None])
    assert type(got) is torch.Tensor and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_monai_transforms_equal_ssl_zoo_on_a_ct_slice_and_volume() -> None:
    hounsfield = _dicom("CT_small.dcm")  # 128 x 128, float64 HU
    slice_tf = ssl_zoo.transforms("lidc-byol", framework="monai")
    torch.testing.assert_close(slice_tf(hounsfield[None]), ssl_zoo.transforms("lidc-byol")(hounsfield),
                               rtol=1e-5, atol=1e-5)
    volume = np.stack([hounsfield[:64, :64] + 10.0 * k for k in range(32)], axis=-1)  # 64 x 64 x 32, a window
    expected = ssl_zoo.transforms("models-genesis")(volume)
    torch.testing.assert_close(ssl_zoo.transforms("models-genesis", framework="monai")(volume[None]), expected,
                               rtol=1e-5, atol=1e-6)


def test_dictionary_transforms_apply_to_the_keys_given() -> None:
    pixels = _dicom("RG1_UNCR.dcm")[::4, ::4].copy()
    tf = ssl_zoo.transforms("moco-cxr-d121", framework="monai", keys=["image"])
    sample = tf({"image": pixels[None], "label": 1})
    assert sample["label"] == 1
    torch.testing.assert_close(sample["image"], ssl_zoo.transforms("moco-cxr-d121")(pixels), rtol=1e-5, atol=1e-5)
    assert isinstance(tf, monai.transforms.Compose)
    with pytest.raises(OptionError, match="framework='monai'"):
        ssl_zoo.transforms("moco-cxr-d121", keys=["image"])
    with pytest.raises(FrameworkError, match="unknown framework"):
        ssl_zoo.transforms("moco-cxr-d121", framework="keras")
