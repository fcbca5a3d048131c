"""``load`` options that cannot apply to the model and task asked for are errors that say why, never ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

import ssl_zoo
from ssl_zoo.errors import OptionError, UnknownTaskError

from .fakehub import make_model_folder
from .test_medical import genesis_folder  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def r18(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("options"), "supervised-r18")


@pytest.mark.parametrize("option, value, says", [
    ("features_only", True, "no timm feature wrapper"),
    ("exact", True, "TF 'SAME' padding"),
    ("exact", False, "TF 'SAME' padding"),
    ("num_classes", 4, "pass classes="),
])
def test_segmentation_refuses_backbone_options(r18: Path, option: str, value: object, says: str) -> None:
    with pytest.raises(OptionError, match=says) as caught:
        ssl_zoo.load(r18, task="segmentation", **{option: value})
    assert option in str(caught.value) and isinstance(caught.value, ValueError)


def test_classification_refuses_segmentation_classes(r18: Path) -> None:
    with pytest.raises(OptionError, match="num_classes= for a classification head"):
        ssl_zoo.load(r18, classes=3)


@pytest.mark.parametrize("task, option, value", [
    ("classification", "features_only", True), ("classification", "exact", True),
    ("segmentation", "exact", False), ("segmentation", "num_classes", 2), ("classification", "classes", 2),
])
def test_unet3d_refuses_options_that_cannot_apply(genesis_folder: tuple, task: str, option: str,  # noqa: F811
                                                  value: object) -> None:
    with pytest.raises(OptionError, match=option):
        ssl_zoo.load(genesis_folder[0], task=task, **{option: value})


def test_defaults_and_applicable_options_still_load(r18: Path) -> None:
    assert ssl_zoo.load(r18, task="segmentation", classes=2).segmentation_head[0].out_channels == 2
    assert ssl_zoo.load(r18, exact=False, num_classes=3).fc.out_features == 3
    with pytest.raises(UnknownTaskError):
        ssl_zoo.load(r18, task="detection")


def test_unet3d_refuses_an_explicit_channel_count(genesis_folder: tuple) -> None:  # noqa: F811  (fixture)
    folder = genesis_folder[0]
    with pytest.raises(OptionError, match="in_chans cannot apply.*got 3"):
        ssl_zoo.load(folder, in_chans=3)
    assert ssl_zoo.load(folder, in_chans=1) is not None


def test_a_channel_count_below_one_is_an_option_error(r18: Path) -> None:
    with pytest.raises(OptionError, match="in_chans cannot apply.*got 0"):
        ssl_zoo.load(r18, in_chans=0)


@pytest.mark.parametrize("classes", [0, -2])
def test_a_segmentation_channel_count_below_one_is_an_option_error(r18: Path, classes: int) -> None:
    # 0 used to become 1 silently (``classes or 1``) and -2 failed deep inside smp
    with pytest.raises(OptionError, match=f"classes cannot apply.*got {classes}"):
        ssl_zoo.load(r18, task="segmentation", classes=classes)
