"""Invariance computed by hand as upstream's ``invariances.py`` / ``invariances_multiview.py`` do it.

The hand version: ``np.random.seed(seed)``; clean features of every image (fewer than 1000) through PIL
``Resize`` + ``CenterCrop`` + ``ToTensor`` + ImageNet normalisation; ``np.cov(rowvar=False) + 1e-6 I``, its inverse
and the Cholesky factor of the inverse; ``np.random.choice`` of the scored images; each copy made with
torchvision's functional op on the full-size PIL image, then ``resize`` + ``center_crop``; scipy's ``mahalanobis``
and torch's ``cosine_similarity`` of the whitened, mean-centred features; nan-mean over images, mean over copies.
"""

from __future__ import annotations

import numpy as np
import pytest

from ssl_zoo.evaluation.data import Samples

from .test_eval_support import r18_folder  # noqa: F401  (fixture)

RESIZE, CROP = 40, 32
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def retina_crops(n: int, seed: int = 0) -> np.ndarray:
    from skimage import data

    image = data.retina()[::4, ::4]  # 353 x 353 fundus photograph
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, image.shape[0] - 96, size=(n, 2))
    return np.stack([image[y:y + 96, x:x + 96] for y, x in corners])


def hand_features(model, pil_images) -> np.ndarray:
    import torch
    from torchvision.transforms import functional as FT

    rows = []
    with torch.no_grad():
        for image in pil_images:
            x = FT.normalize(FT.pil_to_tensor(image).to(torch.float32) / 255.0, MEAN, STD)
            rows.append(model(x[None])[0].numpy())
    return np.stack(rows)


def hand_whitening(features):
    import torch

    mean = features.mean(0)
    cov = np.cov(features, rowvar=False) + 1e-6 * np.eye(features.shape[1])
    inv = np.linalg.inv(cov)
    return mean, inv, torch.linalg.cholesky(torch.from_numpy(inv)).numpy()


def hand_scores(clean, moved, mean, inv, chol):
    import torch
    import torch.nn.functional as F
    from scipy.spatial.distance import mahalanobis

    a = torch.from_numpy((mean - clean) @ chol)
    b = torch.from_numpy((mean - moved) @ chol)
    return mahalanobis(clean, moved, inv), float(F.cosine_similarity(a, b, dim=-1))


def hand_invariance(model, crops, copies, num_images):
    from PIL import Image
    from torchvision.transforms import functional as FT

    def resized(image):
        return FT.center_crop(FT.resize(image, RESIZE), CROP)

    np.random.seed(0)
    pil = [Image.fromarray(c).convert("RGB") for c in crops]
    mean, inv, chol = hand_whitening(hand_features(model, [resized(p) for p in pil]))
    chosen = np.random.choice(np.arange(len(pil)), num_images)
    results = {}
    for family, make in copies.items():
        distance, similarity = np.zeros((num_images, len(make))), np.zeros((num_images, len(make)))
        for i, index in enumerate(chosen):
            clean = hand_features(model, [resized(pil[index])])[0]
            moved = hand_features(model, [resized(m(pil[index])) for m in make])
            for j in range(len(make)):
                distance[i, j], similarity[i, j] = hand_scores(clean, moved[j], mean, inv, chol)
        results[family] = (np.nanmean(distance, 0).mean(), np.nanmean(similarity, 0).mean(),
                           half_width(np.nanmean(distance, 1)), half_width(np.nanmean(similarity, 1)))
    return results


def half_width(values):
    """95 % Student-t half-width of the mean of ``values``, written out."""
    from scipy.stats import t

    return t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))


def test_invariance_matches_the_hand_computation(r18_folder):
    import ssl_zoo
    from torchvision.transforms import functional as FT

    from ssl_zoo.errors import StatisticWarning
    from ssl_zoo.evaluation.invariance import invariance

    crops = retina_crops(30)
    data = Samples(crops, np.zeros(30, np.int64), "binary", ("a", "b"))
    with pytest.warns(StatisticWarning, match="singular"):  # 30 images, 512-d features
        record = invariance(r18_folder, data, transforms=("rotation", "h_flip", "posterize", "translation"), k=4,
                            num_images=5, resize=RESIZE, crop_size=CROP, device="cpu", batch_size=1, progress=False)
    # translation, k = 4: a 2 x 2 grid of linspace(-s, s, 3)[:2] with s = (1 - 32/40) / 2, in pixels of the
    # 40-pixel resize but applied to the full-size image, with upstream's 1-degree shear
    offsets = [(a * RESIZE, b * RESIZE) for a in (-0.1, 0.0) for b in (-0.1, 0.0)]
    copies = {"rotation": [lambda im, a=a: FT.rotate(im, a) for a in (0.0, 90.0, 180.0, 270.0)],
              "h_flip": [lambda im: im, FT.hflip],
              "posterize": [lambda im, b=b: FT.posterize(im, b) for b in range(1, 8)],
              "translation": [lambda im, t=t: FT.affine(im, angle=0.0, translate=list(t), scale=1.0, shear=1.0)
                              for t in offsets]}
    expected = hand_invariance(ssl_zoo.load(r18_folder).eval(), crops, copies, num_images=5)
    for family, (distance, similarity, distance_ci, similarity_ci) in expected.items():
        got = record["transforms"][family]
        assert got["mahalanobis"] == pytest.approx(distance, rel=1e-5)
        assert got["cosine_similarity"] == pytest.approx(similarity, rel=1e-5, abs=1e-7)
        assert got["mahalanobis_ci95"] == pytest.approx(distance_ci, rel=1e-4, abs=1e-9)  # the figure's whiskers
        assert got["cosine_similarity_ci95"] == pytest.approx(similarity_ci, rel=1e-4, abs=1e-9)
    assert record["transforms"]["posterize"]["copies"] == 7 and record["covariance_images"] == 30
    assert record["warnings"] and record["preset"]["settings"]["eps"] == 1e-6


def test_scores_match_scipy_mahalanobis_and_torch_cosine_on_well_conditioned_features():
    from ssl_zoo.evaluation.invariance_stats import pair_scores, whitening

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6))
    w = whitening(feats, 1e-6)
    clean, moved = feats[:10], feats[:10] + rng.normal(0, 0.3, size=(10, 6))
    distance, cosine = pair_scores(clean, moved, w)
    mean, inv, chol = hand_whitening(feats)
    for i in range(10):
        expected = hand_scores(clean[i], moved[i], mean, inv, chol)
        assert (distance[i], cosine[i]) == pytest.approx(expected, rel=1e-9)


def test_covariance_draw_is_upstreams_and_sweeps_are_upstreams():
    from ssl_zoo.evaluation.invariance_stats import covariance_draw
    from ssl_zoo.evaluation.invariance_transforms import FAMILIES, default_k, sweep

    assert covariance_draw(999, np.random.RandomState(0), 1000, 0.1).tolist() == list(range(999))
    np.random.seed(0)
    assert covariance_draw(20_000, np.random.RandomState(0), 1000, 0.1).tolist() == \
        np.random.choice(np.arange(20_000), 2000).tolist()
    assert len(FAMILIES) == 18
    assert [len(sweep(f, default_k(f))) for f in ("rotation", "h_flip", "posterize", "deform")] == [256, 2, 7, 256]
    assert sweep("rotation", 256)[1]["angle"] == pytest.approx(360 / 256)
    assert sweep("blur", 256)[0]["kernel_size"] == 23
    assert sweep("translation", 256)[0]["translate"] == [-16.0, -16.0]  # (1 - 224/256)/2 * 256
    assert {p["sigma"] for p in sweep("deform", 256)} == {10, 15, 21, 27, 32, 38, 44, 50}
    crop = sweep("resized_crop", 256)
    assert (crop[0]["height"], crop[-1]["top"]) == (192.0, 64.0)


def test_multiview_pairs_views_of_one_group_and_matches_the_hand_computation(r18_folder):
    import ssl_zoo
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as FT

    from ssl_zoo.errors import DatasetError
    from ssl_zoo.evaluation.invariance import multiview_invariance

    crops = retina_crops(12, seed=1)
    groups = np.array(["p0", "p0", "p1", "p2", "p2", "p2", "p3", "p4", "p4", "p5", "p6", "p6"])
    data = Samples(crops, np.zeros(12, np.int64), "binary", ("a", "b"), groups=groups)
    with pytest.warns(Warning):
        record = multiview_invariance(r18_folder, data, image_size=CROP, num_images=6, device="cpu",
                                      batch_size=1, progress=False)
    pairs = [(0, 1), (3, 4), (7, 8), (10, 11)]
    np.random.seed(0)
    model = ssl_zoo.load(r18_folder).eval()
    pil = [FT.center_crop(FT.resize(Image.fromarray(c).convert("RGB"), CROP, InterpolationMode.BICUBIC), CROP)
           for c in crops]
    mean, inv, chol = hand_whitening(hand_features(model, pil))
    chosen = [pairs[i] for i in np.random.choice(len(pairs), 6)]
    scores = [hand_scores(*hand_features(model, [pil[a], pil[b]]), mean, inv, chol) for a, b in chosen]
    assert record["pairs"] == [list(p) for p in chosen]
    assert record["multiview"]["mahalanobis"] == pytest.approx(np.mean([s[0] for s in scores]), rel=1e-5)
    assert record["multiview"]["cosine_similarity"] == pytest.approx(np.mean([s[1] for s in scores]), rel=1e-5)
    with pytest.raises(DatasetError, match="group"):
        multiview_invariance(r18_folder, Samples(crops, np.zeros(12), "binary", ("a", "b")), progress=False)


def test_invariance_command_warns_in_one_line_and_draws_the_figure(r18_folder, tmp_path, capsys):
    from PIL import Image

    from ssl_zoo.cli.main import main

    folder = tmp_path / "data" / "retina"
    folder.mkdir(parents=True)
    for i, crop in enumerate(retina_crops(12)):
        Image.fromarray(crop).save(folder / f"{i}.png")
    (tmp_path / "data" / "other").mkdir()
    for i, crop in enumerate(retina_crops(12, seed=2)):
        Image.fromarray(crop).save(tmp_path / "data" / "other" / f"{i}.png")
    code = main(["invariance", str(r18_folder), str(tmp_path / "data"), "--transforms", "h_flip", "v_flip",
                 "--num-images", "3", "--image-size", "32", "--device", "cpu", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 0 and "h_flip" in captured.out
    warning = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warning) == 1 and warning[0].startswith("ssl-zoo: warning: the covariance comes from 24 images")
    assert (tmp_path / "out" / "invariance.pdf").is_file() and (tmp_path / "out" / "invariance.png").is_file()


def test_a_dataset_card_is_drawn_from_every_split_as_upstream_and_splits_narrow_it(r18_folder, tmp_path,
                                                                                   capsys):
    """Upstream draws scored and covariance images from ConcatDataset([train, test]): every image of the card."""
    import json

    from ssl_zoo.cli.main import main
    from ssl_zoo.evaluation.data import read_dataset

    from .dataset_layouts import eyepacs

    root = eyepacs(tmp_path / "eyepacs")  # 20 train images, 10 test images
    split = np.asarray(read_dataset("eyepacs", root=root).split)
    common = ["invariance", str(r18_folder), "eyepacs", "--root", str(root), "--transforms", "h_flip",
              "--num-images", "6", "--image-size", "32", "--device", "cpu", "--json", "--out", str(tmp_path / "out")]

    def run(*extra):
        assert main([*common, *extra]) == 0
        out = capsys.readouterr().out
        return json.loads(out[out.index("{"):])

    record = run()
    assert record["covariance_images"] == 30  # fewer than 1000: all of them, train and test alike
    assert record["images"] == np.random.RandomState(0).choice(np.arange(30), 6).tolist()
    assert record["pool"] == {"images": 30, "splits": {"test": 10, "train": 20}}  # the card's own parts
    assert sum(record["drawn_splits"].values()) == 6
    narrowed = run("--splits", "test")
    test_images = np.flatnonzero(split == "test")
    assert narrowed["covariance_images"] == 10 and narrowed["pool"]["splits"] == {"test": 10}
    assert narrowed["images"] == test_images[np.random.RandomState(0).choice(np.arange(10), 6)].tolist()


def test_dataset_pool_concatenates_npz_splits_and_leaves_generic_data_alone():
    from ssl_zoo.errors import SettingError
    from ssl_zoo.evaluation.analysis_input import dataset_pool

    crops = retina_crops(9)
    parts = {k: Samples(crops[i:i + 3], np.arange(3), "multiclass", ("a", "b", "c"))
             for k, i in (("test", 6), ("train", 0), ("val", 3))}
    pool, where = dataset_pool(parts)
    assert np.array_equal(pool.items, crops) and where.tolist() == list(range(9))
    assert pool.split.tolist() == ["train"] * 3 + ["val"] * 3 + ["test"] * 3
    narrowed, where = dataset_pool(parts, ("val",))
    assert np.array_equal(narrowed.items, crops[3:6]) and where.tolist() == [3, 4, 5]
    generic = Samples(crops, np.zeros(9, np.int64), "binary", ("a", "b"))
    assert dataset_pool(generic)[0] is generic
    with pytest.raises(SettingError, match="official splits"):
        dataset_pool(generic, ("test",))
    with pytest.raises(SettingError, match="unknown split"):
        dataset_pool(parts, ("valid",))


def test_an_ill_conditioned_covariance_is_one_typed_line():
    import warnings

    from ssl_zoo.errors import DatasetError
    from ssl_zoo.evaluation.invariance_stats import whitening

    features = np.random.default_rng(0).normal(size=(6, 40)) * 1e12  # scale dwarfs the 1e-6 ridge
    with warnings.catch_warnings(), pytest.raises(DatasetError, match="too ill-conditioned") as info:
        warnings.simplefilter("ignore")
        whitening(features, 1e-6)
    assert "\n" not in str(info.value)
    with pytest.raises(DatasetError, match="non-finite features"):
        whitening(np.full((6, 4), np.nan), 1e-6)


@pytest.mark.parametrize("protocol", ["invariance", "multiview_invariance"])
def test_a_path_given_as_data_is_one_typed_line_before_any_model_is_loaded(protocol, tmp_path):
    import ssl_zoo.evaluation.invariance as module
    from ssl_zoo.errors import DatasetError

    with pytest.raises(DatasetError, match="read it first"):
        getattr(module, protocol)(str(tmp_path / "no-model"), str(tmp_path), progress=False)


def test_an_identity_copy_is_resized_as_the_clean_image_at_any_interpolation():
    from ssl_zoo.evaluation.analysis_input import resize_crop, rgb_image
    from ssl_zoo.evaluation.invariance_transforms import apply

    image = rgb_image(retina_crops(1)[0])
    for interpolation in ("bilinear", "bicubic", "nearest"):
        copy = apply("rotation", image, {"angle": 0.0}, RESIZE, CROP, interpolation)
        clean = resize_crop(image, RESIZE, CROP, interpolation)
        assert np.array_equal(np.asarray(copy), np.asarray(clean)), interpolation
