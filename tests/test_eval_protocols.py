"""Linear probe and fine-tune on tiny learnable data with a real ResNet-18 model folder (CPU, 32x32)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ssl_zoo.evaluation.finetune import finetune
from ssl_zoo.evaluation.paper_splits import paper_splits
from ssl_zoo.evaluation.presets import resolve
from ssl_zoo.evaluation.probe import c_grid, linear_probe

from .test_eval_support import learnable_samples, r18_folder  # noqa: F401  (fixture)

# chance is 1/3 for three balanced classes; the probe must clear it by this much
MARGIN = 0.25


def test_c_grid_is_one_over_45_log_spaced_weight_decays_from_1e_6_to_1e5():
    grid = c_grid(resolve("linear").settings)
    assert len(grid) == 45
    assert grid[0] == pytest.approx(1e6, rel=1e-6) and grid[-1] == pytest.approx(1e-5, rel=1e-6)
    assert np.allclose(np.diff(np.log10(grid)), -11 / 44, atol=1e-6)


def test_linear_probe_beats_chance_and_writes_results(r18_folder, tmp_path):
    data = learnable_samples(90, classes=3)
    record = linear_probe(r18_folder, data, out_dir=tmp_path, image_size=32, progress=False)
    assert record["summary"]["accuracy"]["mean"] > 1 / 3 + MARGIN
    assert record["trials"][0]["C"] in c_grid(resolve("linear").settings)
    assert len(record["trials"][0]["C_grid_scores"]) == 45
    written = json.loads((tmp_path / "probe.json").read_text())
    assert written["sizes"] == {"train": 58, "val": 14, "test": 18}
    assert written["preset"]["preset"] == "ssl-transfer" and written["preset"]["overridden"] == ["image_size"]
    assert written["preset"]["settings"]["image_size"] == 32 and written["preset"]["settings"]["wd_num"] == 45
    assert written["normalization"]["applied"] == "imagenet"
    splits = json.loads((tmp_path / "splits.json").read_text())
    assert sorted(sum(splits["splits"].values(), [])) == list(range(90))


def test_linear_probe_reuses_cached_features(r18_folder, tmp_path, monkeypatch):
    import ssl_zoo.evaluation.features as features

    data = learnable_samples(40)
    first = linear_probe(r18_folder, data, image_size=32, C=1.0, progress=False)
    monkeypatch.setattr(features, "compute_features", lambda *a, **k: pytest.fail("features were recomputed"))
    second = linear_probe(r18_folder, data, image_size=32, C=1.0, progress=False)
    assert first["summary"] == second["summary"]


def test_finetune_beats_chance_with_trials_and_label_fraction(r18_folder, tmp_path):
    data = learnable_samples(48)
    record = finetune(r18_folder, data, out_dir=tmp_path, label_fraction=0.5, trials=2, preset="benchmark-transfer",
                      epochs=3, patience=2, lr=1e-3, batch_size=8, image_size=32, progress=False)
    # chance is 0.5 for balanced binary labels; AUC above 0.75 on both trials is far from it
    assert all(t["test"]["auc"] > 0.75 for t in record["trials"])
    assert record["summary"]["auc"]["n"] == 2
    splits = json.loads((tmp_path / "splits.json").read_text())
    # half of 31 training images (48 - 10 test - floor(0.2 * 38) val), round(15.5) = 16
    assert [len(s) for s in splits["train_subsets"]] == [16, 16]
    assert splits["train_subsets"][0] != splits["train_subsets"][1]  # trial t subsamples with seed + t
    assert set(splits["train_subsets"][0]) <= set(range(31))
    assert record["preset"]["preset"] == "benchmark-transfer" and record["normalization"]["applied"] == "imagenet"
    assert set(record["preset"]["overridden"]) == {"epochs", "patience", "lr", "batch_size", "image_size"}
    assert (tmp_path / "finetune.json").is_file()
    from sklearn.metrics import roc_auc_score

    y = paper_splits(data, seed=0)[0]["test"].class_ids()
    for t, trial in enumerate(json.loads((tmp_path / "finetune.json").read_text())["trials"]):
        scores = np.load(tmp_path / trial["test_scores"])  # per-image test scores, test-split order, for compare
        assert trial["test_scores"] == f"test_scores-trial-{t}.npy" and scores.dtype == np.float32
        assert roc_auc_score(y, scores) == pytest.approx(trial["test"]["auc"], abs=1e-6)
