"""Few-shot and segmentation with the ResNet-18 model folder (CPU, 32x32); saliency, invariance, compare and
reconstruction have their own test_eval_*.py files."""

from __future__ import annotations

import json

import numpy as np

from ssl_zoo.evaluation.fewshot import fewshot, fewshot_features

from .test_eval_support import learnable_samples, r18_folder  # noqa: F401  (fixture)


def test_fewshot_episodes_on_separable_features():
    labels = np.repeat(np.arange(6), 20)
    feats = np.eye(6)[labels] * 10 + np.random.default_rng(0).normal(0, 0.1, (120, 6))
    run = fewshot_features(feats, labels, n_way=5, k_shot=1, n_query=3, episodes=50, progress=False)
    assert run["summary"]["mean"] == 1.0 and len(run["accuracies"]) == 50
    noise = np.random.default_rng(1).normal(size=(120, 6))
    chance = fewshot_features(noise, labels, n_way=5, k_shot=1, n_query=3, episodes=200, progress=False)
    assert chance["summary"]["ci95_low"] < 0.2 + 0.1  # 1/5 chance, within noise


def test_fewshot_with_the_model_beats_chance(r18_folder, tmp_path):
    record = fewshot(r18_folder, learnable_samples(60, classes=3), out_dir=tmp_path, n_way=3, k_shot=5, n_query=5,
                     episodes=100, image_size=32, progress=False)
    assert record["summary"]["mean"] > 1 / 3 + 0.3 and record["summary"]["n"] == 100
    assert len(json.loads((tmp_path / "fewshot.json").read_text())["accuracies"]) == 100


def _segmentation_samples(tmp_path, n=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(n):
        mask = np.zeros((32, 32), np.uint8)
        y, x = rng.integers(0, 16, size=2)
        mask[y:y + 16, x:x + 16] = 255
        image = np.clip(40 + mask * 0.6 + rng.normal(0, 10, mask.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(images / f"{i}.png")
        Image.fromarray(mask).save(masks / f"{i}.png")
    return images, masks


def test_segmentation_trains_and_reports_dice_and_iou(r18_folder, tmp_path):
    from ssl_zoo.evaluation.file_readers import read_segmentation_pairs
    from ssl_zoo.evaluation.segment import segment

    data = read_segmentation_pairs(*_segmentation_samples(tmp_path, n=10))
    record = segment(r18_folder, data, out_dir=tmp_path / "out", epochs=3, patience=2, batch_size=4,
                     image_size=32, progress=False)
    test = record["trials"][0]["test"]
    assert 0.0 <= test["iou"] <= test["dice"] <= 1.0
    # the squares cover a quarter of each image: predicting all foreground scores Dice 0.4
    assert test["dice"] > 0.4
    assert (tmp_path / "out" / "segment.json").is_file() and (tmp_path / "out" / "splits.json").is_file()
