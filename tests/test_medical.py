"""Medical entries beyond the generic end-to-end test: Lightning and MoCo files, U-Nets, UNet3D, the example."""

from __future__ import annotations

import importlib.util
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_zoo
from ssl_zoo.architectures.tasks import UnknownTaskError
from ssl_zoo.converters.convert import convert_checkpoint, convert_state_dict
from ssl_zoo.converters.readers import read_checkpoint
from ssl_zoo.errors import ManualDownloadRequired
from ssl_zoo.registry import get_entry

from .fixtures import build

REPO = Path(__file__).resolve().parent.parent


def converted(tmp_path_factory: pytest.TempPathFactory, name: str, variant: str = "default") -> tuple[Path, dict]:
    """A model folder of ``name`` converted from its fixture once, and what it must hold."""
    root = tmp_path_factory.mktemp(f"{name}-{variant}")
    fixture = build(name, root / "files", variant)
    return convert_checkpoint(get_entry(name), fixture.path, "0" * 64, dest=root / "folder"), fixture.expected


@pytest.fixture(scope="module")
def dira_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return converted(tmp_path_factory, "dira")


@pytest.fixture(scope="module")
def genesis_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return converted(tmp_path_factory, "models-genesis")


@pytest.fixture(scope="module")
def cxr_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    return converted(tmp_path_factory, "moco-cxr-r18")


# --- files: Lightning callbacks keyed by class, MoCo key encoder and queue ---------------------------------


def test_lightning_file_needs_the_restricted_reader_and_never_imports_lightning(tmp_path: Path) -> None:
    fixture = build("mimic-chexpert-lr-0.01", tmp_path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(fixture.path, weights_only=True)  # the class-keyed callbacks are what upstream files hold
    folder = ssl_zoo.convert_file("mimic-chexpert-lr-0.01", fixture.path)
    assert ssl_zoo.load_state_dict(folder).keys() == fixture.expected.keys()
    assert not any(m.split(".")[0] in ("pytorch_lightning", "lightning") for m in sys.modules)


@pytest.mark.parametrize(("name", "dropped"), [("moco-cxr-r18", 124 + 2 + 4), ("mimic-chexpert-lr-0.1", 727 + 2 + 4 + 2)])
def test_key_encoder_queue_and_head_are_dropped(name: str, dropped: int, tmp_path: Path) -> None:
    fixture = build(name, tmp_path)
    state = read_checkpoint(fixture.path)["state_dict"]
    assert any(".encoder_k." in k for k in state) and any(k.endswith("queue") for k in state)
    tensors, report = convert_state_dict(read_checkpoint(fixture.path), get_entry(name))
    assert sum(report.dropped.values()) == dropped  # key encoder + queue/ptr + head (+ metric states)
    assert set(tensors) == set(fixture.expected)


# --- U-Nets ---------------------------------------------------------------------------------------------------


def test_unet_folder_records_its_parts(dira_folder) -> None:
    folder, expected = dira_folder
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "unet-resnet50"
    assert config["ssl_zoo"]["parts"] == ["encoder", "decoder", "segmentation_head"]
    assert len(expected) == 380


def test_unet_with_another_class_count_keeps_encoder_and_decoder(dira_folder) -> None:
    folder, expected = dira_folder
    model = ssl_zoo.load(folder, task="segmentation", classes=3)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items() if not k.startswith("segmentation_head."))
    assert state["segmentation_head.0.weight"].shape == (3, 16, 3, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 96)).shape == (1, 3, 64, 96)


def test_unet_one_channel_input_sums_the_stem(dira_folder) -> None:
    folder, expected = dira_folder
    model = ssl_zoo.load(folder, task="segmentation", in_chans=1)
    torch.testing.assert_close(model.encoder.conv1.weight, expected["encoder.conv1.weight"].sum(1, keepdim=True))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_unet_encoder_as_backbone_has_timm_features(dira_folder) -> None:
    folder, expected = dira_folder
    stages = ssl_zoo.load(folder, features_only=True)(torch.randn(1, 3, 64, 64))
    assert [t.shape[1] for t in stages] == [64, 256, 512, 1024, 2048]
    head = ssl_zoo.load(folder, num_classes=5)
    assert torch.equal(head.conv1.weight, expected["encoder.conv1.weight"])


def test_classification_entry_as_unet_encoder_with_fresh_decoder(cxr_folder) -> None:
    folder, expected = cxr_folder
    model = ssl_zoo.load(folder, task="segmentation", classes=2)
    encoder = model.encoder.state_dict()
    assert set(encoder) == set(expected) and all(torch.equal(encoder[k], v) for k, v in expected.items())
    assert model.decoder.blocks[0].conv1[0].weight.abs().sum() > 0  # initialised, not empty
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 2, 64, 64)


def test_unknown_task_is_a_typed_error(cxr_folder) -> None:
    with pytest.raises(UnknownTaskError, match="task='segmentation'"):
        ssl_zoo.load(cxr_folder[0], task="detection")


def test_user_supplied_unet_explains_how_to_supply_it() -> None:
    with pytest.raises(ManualDownloadRequired) as info:
        ssl_zoo.pull("dira")
    message = str(info.value)
    assert "\n" not in message and "ssl-zoo convert dira --from-file" in message and "issue #4" in message


# --- UNet3D ---------------------------------------------------------------------------------------------------


def test_unet3d_on_a_small_cube(genesis_folder) -> None:
    folder, expected = genesis_folder
    model = ssl_zoo.load(folder, task="segmentation")
    cube = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        out = model(cube)
    assert out.shape == (1, 1, 32, 32, 32) and 0 <= float(out.min()) and float(out.max()) <= 1  # sigmoid output
    encoder = ssl_zoo.load(folder)
    assert set(encoder.state_dict()) == {k for k in expected if k.startswith("down_tr")}
    with torch.no_grad():
        assert encoder(cube).shape == (1, 512)


def test_unet3d_normalises_with_batch_statistics_as_upstream(genesis_folder) -> None:
    model = ssl_zoo.load(genesis_folder[0], task="segmentation")
    cube = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        before = model(cube)
        model.down_tr64.ops[0].bn1.running_mean.add_(100.0)  # never used: ContBatchNorm3d uses the batch's stats
        assert torch.equal(model(cube), before)


def test_models_genesis_transform_windows_hounsfield_units() -> None:
    volume = np.linspace(-2000, 2000, 16 * 16 * 8).reshape(16, 16, 8)
    out = ssl_zoo.transforms("models-genesis")(volume)
    assert out.shape == (1, 16, 16, 8) and out.dtype == torch.float32
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    torch.testing.assert_close(out[0, 8, 0, 0], torch.tensor((volume[8, 0, 0] + 1000) / 2000, dtype=torch.float32))


# --- the chest radiograph example ----------------------------------------------------------------------------


def _example():
    sys.path.insert(0, str(REPO / "examples"))  # the examples import their shared _sources.py
    spec = importlib.util.spec_from_file_location("chest_xray_features", REPO / "examples" / "chest_xray_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_a_real_radiograph_through_the_model(mirror) -> None:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    example = _example()
    path = get_testdata_file("RG1_UNCR.dcm")
    raw = dcmread(path).pixel_array
    pixels = example.read_radiograph(path)
    assert dcmread(path).PhotometricInterpretation == "MONOCHROME1"
    assert np.array_equal(pixels, raw.max() - raw.astype(np.float32))  # inverted: bone is bright
    image = ssl_zoo.transforms(example.MODEL)(pixels)
    assert image.shape == (3, 320, 320) and torch.isfinite(image).all()
    assert abs(float(image.mean()) * 0.085585 + 0.5020 - 0.5) < 0.3  # CheXpert statistics undo to [0,1]
    assert example.features(path).shape == (1, 1024)  # (random fixture weights: the values mean nothing)


def test_example_offline_from_a_mirror_folder_or_one_line(mirror, fixtures, monkeypatch, capsys) -> None:
    example = _example()
    monkeypatch.delenv("SSL_ZOO_MIRROR")
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    assert example.run(example.main, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot run" in err and "--mirror" in err
    mirror_root = fixtures[example.MODEL].path.parent.parent
    assert example.run(example.main, ["--mirror", str(mirror_root)]) == 0
    assert "(1, 1024) features" in capsys.readouterr().out


# --- registry ------------------------------------------------------------------------------------------------

MEDICAL = ["moco-cxr-r18", "moco-cxr-d121", "mimic-chexpert-lr-0.01", "mimic-chexpert-lr-0.1", "mimic-chexpert-lr-1.0",
           "lidc-byol", "lidc-swav", "lidc-moco-v2", "lidc-spark", "dira", "magical", "models-genesis"]


@pytest.mark.parametrize("name", MEDICAL)
def test_medical_entry_is_complete(name: str) -> None:
    from ssl_zoo.architectures import ARCHS
    from ssl_zoo.converters.families import all_families

    entry = get_entry(name)
    assert entry.arch in ARCHS and entry.family in all_families() and "medical" in entry.tags
    assert entry.paper_url.startswith("https://") and entry.code_url.startswith("https://github.com/")
    assert entry.checkpoint.filename and "?" not in entry.checkpoint.filename  # Drive URLs name no file
    assert (entry.status == "user-supplied") == (name in ("dira", "magical")) and bool(entry.how_to_get) == (entry.status != "public")
    pre = entry.preprocessing
    assert pre.grayscale or name in ("dira", "magical", "lidc-spark")
    assert len(pre.input_size) == (4 if name == "models-genesis" else 3)


def test_preprocessing_records_follow_the_upstream_recipes() -> None:
    mimic, cxr, ct, genesis = (get_entry(n).preprocessing for n in
                               ("mimic-chexpert-lr-1.0", "moco-cxr-d121", "lidc-byol", "models-genesis"))
    assert mimic.histogram_equalize and mimic.value_range == "[0,255]" and not mimic.normalized
    assert cxr.mean == (0.5020,) * 3 and cxr.std == (0.085585,) * 3 and cxr.input_size == (3, 320, 320)
    assert ct.mean == (0.1806,) * 3 and ct.std == (0.1907,) * 3
    assert genesis.window == (-1000.0, 1000.0) and genesis.input_size == (1, 64, 64, 32)
