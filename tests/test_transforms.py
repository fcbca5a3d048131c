"""``ssl_zoo.transforms``: every input kind, every intensity rule, eval and train geometry, names and folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

import ssl_zoo
from ssl_zoo.errors import RegistryError, SslZooError
from ssl_zoo.registry.schema import parse_preprocessing
from ssl_zoo.preprocessing import equalize_histogram, preprocessing_of, to_unit_tensor

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def gradient_image(height: int = 300, width: int = 400, dtype: type = np.uint8, top: int = 255) -> np.ndarray:
    """A diagonal ramp: every crop and resize leaves a visible trace."""
    ramp = np.add.outer(np.arange(height), 2 * np.arange(width)).astype(np.float64)
    return (ramp / ramp.max() * top).astype(dtype)


def reference_eval(x: torch.Tensor, resize: int, crop: int, mean, std) -> torch.Tensor:
    """torchvision's own eval pipeline on a [0,1] tensor, built independently of ssl_zoo."""
    steps = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(crop), v2.Normalize(mean, std)])
    return steps(x)


def test_uint8_gray_array_matches_torchvision_eval_pipeline() -> None:
    image = gradient_image()
    out = ssl_zoo.transforms("moco-v2")(image)
    assert out.dtype == torch.float32 and out.shape == (3, 224, 224)
    gray = torch.from_numpy(image / 255.0).float()[None].expand(3, -1, -1)
    expected = reference_eval(gray, 256, 224, IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_pil_rgb_and_channel_last_array_agree_and_keep_colour() -> None:
    rgb = np.stack([gradient_image(), 255 - gradient_image(), np.full((300, 400), 30, np.uint8)], axis=-1)
    tf = ssl_zoo.transforms("supervised-r50")
    from_pil, from_array = tf(Image.fromarray(rgb)), tf(rgb)
    torch.testing.assert_close(from_pil, from_array)
    assert not torch.allclose(from_pil[0], from_pil[1])  # the channels were not merged
    blue = (30 / 255 - IMAGENET_MEAN[2]) / IMAGENET_STD[2]
    torch.testing.assert_close(from_pil[2], torch.full((224, 224), blue), atol=1e-4, rtol=0)


def test_uint16_dicom_like_array_is_min_max_scaled() -> None:
    raw = gradient_image(dtype=np.uint16, top=4000) + 874
    out = ssl_zoo.transforms("moco-cxr-d121", in_chans=1)(raw)
    assert out.shape == (1, 320, 320)
    scaled = torch.from_numpy((raw - 874.0) / 4000.0).float()[None]  # min-max over the image
    torch.testing.assert_close(out, reference_eval(scaled, 320, 320, (0.5020,), (0.085585,)), atol=1e-4, rtol=0)
    as_16bit_png = ssl_zoo.transforms("moco-cxr-d121", in_chans=1)(Image.fromarray(raw.astype(np.int32), mode="I"))
    torch.testing.assert_close(as_16bit_png, out)


def test_float_inputs_in_unit_range_are_kept_and_others_scaled() -> None:
    assert torch.equal(to_unit_tensor(np.array([[0.2, 0.4]]), None), torch.tensor([[[0.2, 0.4]]]))
    torch.testing.assert_close(to_unit_tensor(np.array([[-3.0, 1.0]]), None), torch.tensor([[[0.0, 1.0]]]))
    assert to_unit_tensor(np.full((4, 4), 7.0), None).abs().sum() == 0  # a flat image has no range to scale


def test_window_clips_hounsfield_units() -> None:
    hu = np.array([[-3000.0, -1000.0, 0.0, 500.0, 1000.0, 3000.0]])
    out = to_unit_tensor(hu, (-1000.0, 1000.0))
    torch.testing.assert_close(out, torch.tensor([[[0.0, 0.0, 0.5, 0.75, 1.0, 1.0]]]))


def test_histogram_equalisation_gives_the_covidprognosis_range_without_mean_std() -> None:
    skewed = (gradient_image().astype(np.float64) ** 3 / 255**2).astype(np.uint8)  # mostly dark
    out = ssl_zoo.transforms("mimic-chexpert-lr-0.1")(skewed)
    assert out.shape == (3, 224, 224)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
    assert 250 < float(out.max()) <= 255.0 and float(out.min()) >= 0.0
    assert abs(float(out.mean()) - 127.5) < 20  # equalised: the mean moves to the middle of the range
    flat = torch.rand(1, 64, 64)
    eq = equalize_histogram(flat)
    order = torch.argsort(flat.ravel())
    assert bool((eq.ravel()[order].diff() >= 0).all())  # monotone: the ranking of pixels is kept


def test_rgb_input_to_grayscale_entry_uses_luminance() -> None:
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    out = ssl_zoo.transforms("moco-cxr-r18", in_chans=1)(red)
    torch.testing.assert_close(out, torch.full((1, 320, 320), (0.299 - 0.5020) / 0.085585), atol=1e-4, rtol=0)


def test_tensor_inputs_channels_first() -> None:
    x = torch.rand(3, 100, 120)
    out = ssl_zoo.transforms("supervised-r18")(x)
    torch.testing.assert_close(out, reference_eval(x, 256, 224, IMAGENET_MEAN, IMAGENET_STD), atol=1e-5, rtol=0)
    assert ssl_zoo.transforms("supervised-r18")(torch.rand(100, 120)).shape == (3, 224, 224)


def test_train_mode_is_random_resized_crop_and_flip() -> None:
    tf = ssl_zoo.transforms("moco-v2", train=True)
    torch.manual_seed(0)
    a, b = tf(gradient_image()), tf(gradient_image())
    assert a.shape == b.shape == (3, 224, 224)
    assert not torch.allclose(a, b)
    eval_out = ssl_zoo.transforms("moco-v2")(gradient_image())
    assert not torch.allclose(a, eval_out)


def test_transform_pickles_for_dataloader_workers() -> None:
    import pickle

    tf = ssl_zoo.transforms("mimic-chexpert-lr-0.01")
    image = gradient_image()
    assert torch.equal(pickle.loads(pickle.dumps(tf))(image), tf(image))


def test_folder_path_reads_its_config(mirror, tmp_path: Path) -> None:
    folder = ssl_zoo.pull("mimic-chexpert-lr-1.0")
    image = gradient_image()
    by_name = ssl_zoo.transforms("mimic-chexpert-lr-1.0")(image)
    assert torch.equal(ssl_zoo.transforms(folder)(image), by_name)

    copy = tmp_path / "renamed"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    config["ssl_zoo"]["name"] = "a-name-no-registry-has"  # the structured record must suffice
    (copy / "config.json").write_text(json.dumps(config))
    assert torch.equal(ssl_zoo.transforms(str(copy))(image), by_name)

    del config["ssl_zoo"]  # a folder timm wrote: its pretrained_cfg gives size, crop and mean/std
    (copy / "config.json").write_text(json.dumps(config))
    pre = preprocessing_of(copy)
    assert pre.input_size == (3, 224, 224) and pre.mean == (0.0, 0.0, 0.0) and not pre.histogram_equalize


def test_errors_are_typed_and_say_what_to_do(tmp_path: Path) -> None:
    tf = ssl_zoo.transforms("moco-v2")
    with pytest.raises(SslZooError, match="pass a PIL image"):
        tf("not an image")
    with pytest.raises(SslZooError, match="shape"):
        tf(np.zeros((2, 2, 2, 2)))
    with pytest.raises(SslZooError, match="in_chans"):
        ssl_zoo.transforms("moco-v2", in_chans=2)
    with pytest.raises(SslZooError, match="config.json"):
        ssl_zoo.transforms(tmp_path)
    with pytest.raises(KeyError):
        ssl_zoo.transforms("no-such-model")


@pytest.mark.parametrize("bad", [{"window": [5, 1]}, {"value_range": "[0,2]"}, {"input_size": [3, 224]},
                                 {"interpolation": "lanczos9"}])
def test_schema_rejects_bad_intensity_fields(bad: dict) -> None:
    with pytest.raises(RegistryError):
        parse_preprocessing("test", bad)


def test_ssl_zoo_transforms_stays_the_function_after_its_module_is_imported() -> None:
    import ssl_zoo.preprocessing  # noqa: F401  (a submodule named like the function would shadow it here)

    assert ssl_zoo.transforms is ssl_zoo.preprocessing.transforms
    assert ssl_zoo.transforms("moco-v2")(gradient_image()).shape == (3, 224, 224)
