"""The input guard on models from ``ssl_zoo.load``: one warning on a first batch that is not preprocessed, silence
on one that is, nothing after the first batch, never a change to outputs or weights."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import ssl_zoo
from ssl_zoo.converters.convert import convert_checkpoint
from ssl_zoo.errors import InputWarning, SettingError
from ssl_zoo.guard import Expected, expected_input, input_problems
from ssl_zoo.registry import get_entry

from .fixtures import build


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("guard")
    fixture = build("supervised-r18", root / "files")
    return convert_checkpoint(get_entry("supervised-r18"), fixture.path, "0" * 64, dest=root / "supervised-r18")


def image(seed: int = 0) -> np.ndarray:
    """A smooth uint8 RGB photo-like image, (H, W, 3)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3)).astype(np.float64)
    return np.kron(small, np.ones((8, 8, 1))).astype(np.uint8)


def raw_batch() -> torch.Tensor:
    return torch.from_numpy(image()).permute(2, 0, 1)[None].float()  # 0-255, never normalised


def first_batch_warnings(model: torch.nn.Module, x: torch.Tensor) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            model(x)
    return [str(w.message) for w in caught if issubclass(w.category, InputWarning)]


def test_expected_range_is_what_the_normalisation_gives_by_hand() -> None:
    pre = get_entry("supervised-r18").preprocessing  # ImageNet mean/std on [0,1]
    expected = expected_input(pre, 3)
    assert expected.low == pytest.approx((0 - 0.485) / 0.229) and expected.high == pytest.approx((1 - 0.406) / 0.225)
    assert expected_input(get_entry("simclr-v1").preprocessing, 3) == Expected(3, 0.0, 1.0, False)


def test_raw_pixels_get_one_warning_naming_the_transform_then_the_hook_is_gone(folder: Path) -> None:
    model = ssl_zoo.load(folder)
    messages = first_batch_warnings(model, raw_batch())
    assert len(messages) == 1
    assert "raw 0-255 pixels" in messages[0] and f"ssl_zoo.transforms({str(folder)!r})" in messages[0]
    assert "SSL_ZOO_INPUT_GUARD=0" in messages[0]
    assert not model._forward_pre_hooks  # later batches cost nothing
    assert first_batch_warnings(model, raw_batch()) == []


def test_preprocessed_input_and_plain_random_batches_are_silent(folder: Path) -> None:
    tf = ssl_zoo.transforms(folder)
    correct = torch.stack([tf(image(seed)) for seed in range(2)])
    assert first_batch_warnings(ssl_zoo.load(folder), correct) == []
    assert first_batch_warnings(ssl_zoo.load(folder), torch.randn(2, 3, 64, 64)) == []


@pytest.mark.parametrize(("x", "says"), [
    (torch.full((1, 3, 32, 32), -1000.0).uniform_(-1000, 1500), "Hounsfield units"),
    (torch.rand(2, 3, 32, 32), "skipped the mean/std normalisation"),
    (torch.randn(1, 1, 32, 32), "1 channels (the network takes 3)"),
])
def test_each_kind_of_wrong_input_is_named(x: torch.Tensor, says: str) -> None:
    problems = input_problems(x, expected_input(get_entry("supervised-r18").preprocessing, 3))
    assert len(problems) == 1 and says in problems[0]


def test_impossible_mean_and_nearly_constant_values_are_named() -> None:
    pre = get_entry("supervised-r18").preprocessing
    expected = expected_input(pre, 3)
    shifted = torch.randn(1, 3, 32, 32) * 0.2 + 3.0  # within the margin, but above (1 - 0.406) / 0.225 = 2.64
    assert "which no preprocessed image has" in input_problems(shifted, expected)[0]
    mean, std = torch.tensor(pre.mean).view(1, 3, 1, 1), torch.tensor(pre.std).view(1, 3, 1, 1)
    twice = (torch.rand(1, 3, 32, 32) / 255 - mean) / std  # a [0,1] image divided by 255 again
    assert "vary far less than preprocessed ones" in input_problems(twice, expected)[0]
    unit = expected_input(get_entry("mimic-chexpert-lr-0.1").preprocessing, 3)  # histogram-equalised to [0,255]
    assert "vary far less" in input_problems(torch.rand(1, 3, 32, 32), unit)[0]  # [0,1] given for [0,255]
    assert input_problems(torch.zeros(1, 3, 32, 32), expected) == []  # a constant smoke-test batch stays silent


def test_a_radiograph_normalised_with_a_small_std_is_silent() -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    pixels = pydicom.dcmread(get_testdata_file("RG1_UNCR.dcm")).pixel_array[::4, ::4]
    x = ssl_zoo.transforms("moco-cxr-d121")(pixels.max() - pixels)[None]  # CheXpert std 0.0856: values span +-6
    assert x.std() > 1.5
    assert input_problems(x, expected_input(get_entry("moco-cxr-d121").preprocessing, 3)) == []


def test_wrong_channel_count_is_said_before_torch_refuses_it(folder: Path) -> None:
    model = ssl_zoo.load(folder)
    with pytest.warns(InputWarning, match="1 channels"), pytest.raises(RuntimeError):
        model(torch.randn(1, 1, 32, 32))


def test_guard_never_changes_outputs_or_weights(folder: Path) -> None:
    guarded, plain = ssl_zoo.load(folder), ssl_zoo.load(folder, guard=False)
    assert guarded.state_dict().keys() == plain.state_dict().keys() and not plain._forward_pre_hooks
    x = raw_batch()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        copied = copy.deepcopy(guarded)  # a copy carries its own one-shot hook
        assert torch.equal(guarded(x), plain(x)) and torch.equal(copied(x), plain(x))
    assert not copied._forward_pre_hooks


def test_environment_turns_it_off_and_rejects_unknown_values(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_ZOO_INPUT_GUARD", "0")
    assert first_batch_warnings(ssl_zoo.load(folder), raw_batch()) == []
    monkeypatch.setenv("SSL_ZOO_INPUT_GUARD", "sometimes")
    with pytest.raises(SettingError, match="SSL_ZOO_INPUT_GUARD"):
        ssl_zoo.load(folder)


def test_monai_networks_are_guarded_too(folder: Path) -> None:
    pytest.importorskip("monai")
    messages = first_batch_warnings(ssl_zoo.load(folder, framework="monai"), raw_batch())
    assert len(messages) == 1 and "raw 0-255 pixels" in messages[0]
