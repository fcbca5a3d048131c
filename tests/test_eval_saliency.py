"""Occlusion saliency computed by hand as upstream's later ``saliency.py`` does it, on a real fundus photograph.

The hand version follows the script step by step: PIL ``Resize`` (bicubic, shorter side) + ``CenterCrop``,
``ToTensor``, ImageNet normalisation, then for every (i, j) a fresh ``clone()`` with a zero window, one forward
pass each, ``||f - f_occ|| / ||f||`` added to the window's pixels, ``/ size**2``, the ``size - 1`` border cut.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from .test_eval_support import r18_folder  # noqa: F401  (fixture)

SIZE, WINDOW = 20, 4


def retina() -> np.ndarray:
    from skimage import data

    return data.retina()


def hand_saliency(model, pixels: np.ndarray, size: int, window: int) -> np.ndarray:
    import torch
    from PIL import Image

    image = Image.fromarray(pixels).convert("RGB")
    w, h = image.size
    short = size if w <= h else int(size * h / w), size if h <= w else int(size * w / h)
    image = image.resize((size, size) if w == h else short, Image.BICUBIC)
    left, top = (image.size[0] - size) // 2, (image.size[1] - size) // 2
    image = image.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    x = (x - torch.tensor([0.485, 0.456, 0.406])[:, None, None]) / torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    scores = np.zeros((size, size))
    with torch.no_grad():
        orig = model(x[None])[0].numpy().astype(np.float64)
        for i in range(1 + size - window):
            for j in range(1 + size - window):
                occluded = x.clone()
                occluded[:, i:i + window, j:j + window] = 0
                feature = model(occluded[None])[0].numpy().astype(np.float64)
                scores[i:i + window, j:j + window] += np.sqrt(((orig - feature) ** 2).sum()) / np.sqrt((orig ** 2).sum())
    scores /= window ** 2
    return scores[window - 1:size - window + 1, window - 1:size - window + 1]


def test_saliency_map_and_attentive_diffusion_match_the_hand_computation(r18_folder, tmp_path):
    import ssl_zoo
    from ssl_zoo.evaluation.saliency import attentive_diffusion, saliency

    pixels = retina()
    record = saliency(r18_folder, [pixels], tmp_path, image_size=SIZE, window=WINDOW, device="cpu", progress=False)
    model = ssl_zoo.load(r18_folder).eval()
    expected = hand_saliency(model, pixels, SIZE, WINDOW)
    got = np.load(record["images"][0]["map"])
    assert got.shape == (SIZE - 2 * (WINDOW - 1),) * 2 == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)  # float32: batched vs single passes
    diffusion = 100 * (expected > expected.mean()).sum() / expected.size
    assert record["images"][0]["attentive_diffusion"] == pytest.approx(diffusion)
    assert attentive_diffusion(np.array([[0.0, 0.0], [0.0, 1.0]])) == 25.0
    saved = json.loads((tmp_path / "saliency.json").read_text())
    assert saved["preset"]["preset"] == "ssl-transfer"
    assert sorted(saved["preset"]["overridden"]) == ["image_size", "window"]
    assert saved["normalization"]["mean"] == [0.485, 0.456, 0.406]
    for suffix in (".png", ".pdf", ".svg"):
        assert any(f.endswith(suffix) for f in record["images"][0]["figures"])


def test_saliency_preset_is_the_paper_and_the_crop_rule_holds_at_any_size():
    from ssl_zoo.errors import SettingError
    from ssl_zoo.evaluation.presets import resolve
    from ssl_zoo.evaluation.saliency import accumulate, check_size

    settings = resolve("saliency").settings
    assert (settings.image_size, settings.window, settings.value) == (242, 10, 0.0)
    assert accumulate(np.zeros((242 - 9, 242 - 9)), 10).shape == (224, 224)
    assert accumulate(np.zeros((100 - 9, 100 - 9)), 10).shape == (82, 82)
    with pytest.raises(SettingError, match="--image-size"):
        check_size(18, 10)


def test_saliency_command_on_a_chest_radiograph(r18_folder, tmp_path, capsys):
    from pydicom.data import get_testdata_file

    from ssl_zoo.cli.main import main

    code = main(["saliency", str(r18_folder), get_testdata_file("RG1_UNCR.dcm"), "--image-size", "24", "--window",
                 "4", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0 and "RG1_UNCR" in capsys.readouterr().out
    assert np.load(tmp_path / "saliency-000-RG1_UNCR.npy").shape == (18, 18)
