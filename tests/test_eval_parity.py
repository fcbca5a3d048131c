"""Protocol presets reproduce the papers' code: each upstream procedure is recomputed here by hand from the facts
(shared/reference/methods.md B.1, B.2) on small fixed inputs, and the protocol must give the same result."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from ssl_zoo.errors import PresetError, UnknownPresetError
from ssl_zoo.evaluation import presets
from ssl_zoo.evaluation.data import Samples
from ssl_zoo.evaluation.presets import list_presets, resolve

from .test_eval_support import r18_folder  # noqa: F401  (fixture)


# ---------------------------------------------------------------------------------------------------- presets


def test_every_preset_resolves_and_each_protocol_defaults_to_its_paper():
    names = [p["name"] for p in list_presets()]
    assert names == ["benchmark-transfer", "magical", "ssl-transfer"]
    assert all(p["sources"] and p["notes"] for p in list_presets())
    assert resolve("linear").preset == "ssl-transfer" and resolve("segment").preset == "benchmark-transfer"
    assert resolve("finetune", "benchmark-transfer").settings.select_on == "loss"


def test_record_names_preset_every_setting_and_the_overrides():
    record = resolve("linear", C=0.5, metric=None).record()
    assert record["preset"] == "ssl-transfer" and record["protocol"] == "linear"
    assert record["overridden"] == ["C"]  # None means "not given"
    assert record["settings"]["C"] == 0.5 and record["settings"]["wd_num"] == 45
    assert record["settings"]["interpolation"] == "bicubic" and record["settings"]["features"] == "raw"
    assert record["sources"] == list(resolve("linear").sources)


def test_unknown_names_are_errors_listing_the_valid_ones():
    with pytest.raises(UnknownPresetError, match="valid presets: benchmark-transfer, magical, ssl-transfer"):
        resolve("linear", "ssl-transfr")
    with pytest.raises(UnknownPresetError, match="valid protocols: .*fewshot.*linear"):
        resolve("prob")
    with pytest.raises(UnknownPresetError, match="presets for linear: ssl-transfer"):
        resolve("linear", "magical")
    with pytest.raises(PresetError, match=r"unknown setting\(s\) \['lrr'\]"):
        resolve("finetune", lrr=0.1)
    with pytest.raises(PresetError, match="steps must be"):
        resolve("finetune", steps="many")


def test_a_preset_table_with_an_unknown_field_is_rejected(tmp_path, monkeypatch):
    (tmp_path / "broken.toml").write_text('[preset]\ntitle = "x"\n[linear]\nwd_grid = 3\n')
    monkeypatch.setattr(presets, "PRESET_DIR", tmp_path)
    presets.read_preset.cache_clear()
    try:
        with pytest.raises(PresetError, match=r"preset 'broken' \[linear\]: unknown setting\(s\) \['wd_grid'\]"):
            resolve("linear", "broken")
    finally:
        presets.read_preset.cache_clear()


# ---------------------------------------------------------------------------------------------------- linear probe


def blobs(n: int, classes: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian blobs: C matters (neither tiny nor huge C is best)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    centres = rng.normal(0, 1.0, (classes, dim))
    return (centres[labels] + rng.normal(0, 1.6, (n, dim))).astype(np.float32), labels


def upstream_probe(x_pool, y_pool, x_test, y_test, *, seed, metric):
    """ssl-transfer linear.py by hand: seed-shuffled 20 % val, one warm-started lbfgs model over torch.logspace(-6, 5,
    45) with C = 1/wd, strict '>' from best_score 0, refit (still warm) on train+val, test score."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix

    indices = list(range(len(x_pool)))
    np.random.seed(seed)
    np.random.shuffle(indices)
    split = int(np.floor(0.2 * len(x_pool)))
    tr, va = indices[split:], indices[:split]

    def score(clf, x, y):
        pred = clf.predict(x)
        if metric == "accuracy":
            return (pred == y).mean()
        cm = confusion_matrix(y, pred)
        return (cm.diagonal() / cm.sum(axis=1)).mean()

    clf = LogisticRegression(solver="lbfgs", warm_start=True)  # multi_class='multinomial' is the lbfgs default now
    best_score, best_C = 0, None
    for wd in torch.logspace(-6, 5, 45):
        C = 1.0 / wd.item()
        clf.set_params(C=C)
        clf.fit(x_pool[tr], y_pool[tr])
        value = score(clf, x_pool[va], y_pool[va])
        if value > best_score:
            best_score, best_C = value, C
    clf.set_params(C=best_C)
    clf.fit(np.concatenate([x_pool[tr], x_pool[va]]), np.concatenate([y_pool[tr], y_pool[va]]))
    return best_C, score(clf, x_test, y_test)


@pytest.mark.parametrize("metric", ["accuracy", "mean_per_class_accuracy"])
def test_linear_probe_chooses_upstream_C_and_test_score(metric):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from ssl_zoo.evaluation.paper_splits import paper_splits
    from ssl_zoo.evaluation.probe import probe_features

    x_pool, y_pool = blobs(100, 3, 12, seed=1)
    x_test, y_test = blobs(60, 3, 12, seed=1)[0][:45], np.arange(45) % 3
    classes = ("a", "b", "c")
    data = {"train": Samples(np.zeros((100, 2, 2), np.uint8), y_pool, "multiclass", classes),
            "test": Samples(np.zeros((45, 2, 2), np.uint8), y_test, "multiclass", classes)}
    parts, index = paper_splits(data, seed=3)
    feats = {"train": x_pool[index["train"]], "val": x_pool[index["val"]], "test": x_test}
    settings = resolve("linear", metric=metric).settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run = probe_features(feats, parts, settings, fraction=1.0, seed=3, progress=False)
        C, test_score = upstream_probe(x_pool, y_pool, x_test, y_test, seed=3, metric=metric)
    assert run["C"] == pytest.approx(C, rel=1e-12) and run["selected_by"] == metric
    assert run["test"][metric] == pytest.approx(test_score, abs=1e-12)
    assert 1e-5 < C < 1e6  # the fixture makes the choice non-trivial


def test_two_class_probe_fits_the_multinomial_objective():
    """Upstream's multinomial two-class model, minimised by hand (scipy), predicts what the 2 C binomial fit does."""
    from scipy.optimize import minimize

    from ssl_zoo.evaluation.probe import Probe

    x, y = blobs(80, 2, 5, seed=4)
    x = x.astype(np.float64)
    C = 0.05

    def objective(w):
        W, b = w[:10].reshape(2, 5), w[10:]
        logits = x @ W.T + b
        logp = logits - np.logaddexp(logits[:, 0], logits[:, 1])[:, None]
        return -C * logp[np.arange(len(y)), y].sum() + 0.5 * (W ** 2).sum()

    w = minimize(objective, np.zeros(12), method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-10}).x
    W, b = w[:10].reshape(2, 5), w[10:]
    hand = np.exp(x @ W.T + b)
    hand = hand[:, 1] / hand.sum(1)
    settings = resolve("linear", max_iter=5000).settings
    mine = Probe("binary", 2, settings).fit(x, y, C).scores(x)
    assert np.allclose(mine, hand, atol=1e-4)


def test_upstream_validation_split_is_the_seeded_shuffle():
    from ssl_zoo.evaluation.paper_splits import upstream_val_indices

    indices = list(range(37))
    np.random.seed(5)
    np.random.shuffle(indices)
    train, val = upstream_val_indices(37, fraction=0.2, seed=5)
    assert val.tolist() == indices[:7] and train.tolist() == indices[7:]


# ---------------------------------------------------------------------------------------------------- few-shot


def test_fewshot_episode_accuracy_and_interval_match_the_upstream_formula():
    from ssl_zoo.evaluation.fewshot import fewshot_features

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 12)
    feats = rng.normal(0, 1, (72, 8)) + labels[:, None] * 0.4
    run = fewshot_features(feats, labels, n_way=3, k_shot=2, n_query=4, episodes=25, seed=9, progress=False)
    draw, accs = np.random.default_rng(9), []
    for _ in range(25):  # the module's documented draws; ProtoNet as few_shot.py
        chosen = draw.choice(np.arange(6), size=3, replace=False)
        picks = [draw.permutation(np.flatnonzero(labels == c))[:6] for c in chosen]
        protos = np.stack([feats[p[:2]].mean(0) for p in picks])
        correct = total = 0
        for k, p in enumerate(picks):
            logits = -((feats[p[2:]][:, None, :] - protos[None]) ** 2).sum(-1)
            correct, total = correct + (logits.argmax(1) == k).sum(), total + len(p[2:])
        accs.append(correct / total)
    assert run["accuracies"] == pytest.approx(accs)
    assert run["summary"]["mean"] == pytest.approx(np.mean(accs))
    assert run["summary"]["ci95"] == pytest.approx(1.96 * np.std(accs) / np.sqrt(25))


# ---------------------------------------------------------------------------------------------------- transforms


def real_images() -> dict[str, np.ndarray]:
    from pydicom.data import get_testdata_file
    from skimage import data as skdata

    from ssl_zoo.evaluation.images import read_dicom

    from pathlib import Path
    return {"chest": read_dicom(Path(get_testdata_file("RG1_UNCR.dcm")))[::8, ::8].copy(),
            "retina": skdata.retina()[::4, ::4].copy(), "ihc": skdata.immunohistochemistry()[::2, ::2].copy()}


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return real_images()


def test_paper_transforms_equal_torchvision_pipelines_of_upstream(images):
    import torch
    from PIL import Image
    from torchvision import transforms as T

    from ssl_zoo.evaluation.preprocess import paper_transform

    config = {"ssl_zoo": {"name": "moco-v2", "method": "MoCo v2"}, "pretrained_cfg": {}}
    normalize = T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    linear = T.Compose([T.Resize(64, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(64), T.ToTensor(),
                        normalize])
    fewshot = T.Compose([T.Resize([int(64 * 1.15)] * 2), T.CenterCrop(64), T.ToTensor(), normalize])
    for name in ("chest", "retina"):
        rgb = Image.fromarray(images[name]).convert("RGB")
        mine = paper_transform(config, resolve("linear", image_size=64).settings)(images[name])
        assert torch.allclose(mine, linear(rgb), atol=1e-5), name
        mine = paper_transform(config, resolve("fewshot", image_size=64).settings)(images[name])
        assert torch.allclose(mine, fewshot(rgb), atol=1e-5), name


def test_normalisation_rule_per_paper_and_the_entry_option(images):
    import torch

    from ssl_zoo.evaluation.preprocess import normalization_for, paper_transform

    entry = {"pretrained_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}
    simclr = {**entry, "ssl_zoo": {"name": "simclr-v1", "method": "SimCLR"}}
    mimic = {**entry, "ssl_zoo": {"name": "mimic-chexpert-lr-0.01", "method": "MoCo v2"}}
    assert normalization_for("paper", simclr)["applied"] == "none"
    assert normalization_for("paper", mimic)["applied"] == "histogram"
    assert normalization_for("entry", mimic)["mean"] == (0.5, 0.5, 0.5)
    out = paper_transform(mimic, resolve("linear", image_size=48).settings)(images["ihc"])
    # HistogramNormalize by hand: 256-bin density histogram of the ToTensor image, cdf * 255 / cdf[-1], interp
    from PIL import Image
    from torchvision import transforms as T

    x = T.Compose([T.Resize(48, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(48), T.ToTensor()])(
        Image.fromarray(images["ihc"])).numpy()
    hist, bins = np.histogram(x.flatten(), 256, density=True)
    cdf = hist.cumsum()
    expected = np.interp(x.flatten(), bins[:-1], 255 * cdf / cdf[-1]).reshape(x.shape)
    assert torch.allclose(out, torch.tensor(expected, dtype=torch.float32), atol=1e-3)
    assert float(out.max()) > 200  # [0, 255] as upstream, no mean/std afterwards


# ---------------------------------------------------------------------------------------------------- fine-tune


def test_finetune_search_grid_is_upstream_lr_wd_over_lr_pairs():
    from ssl_zoo.evaluation.finetune import search_grid

    lrs, wds = [1e-1, 1e-4], [0.0, 1e-6, 1e-3]
    expected = [(lr, wd / lr) for lr in lrs for wd in wds]
    grid = search_grid(2)
    assert len(grid) == 6 and np.allclose(np.array(grid), np.array(expected), rtol=1e-6, atol=0)


def upstream_stop_step(scores: list[float], every: int, patience: int, steps: int) -> tuple[int | None, int]:
    """finetune.py -e by hand: check every ``every`` steps; the first check sets best; a lower value counts one,
    otherwise reset and keep; stop when the count reaches patience. (stop step, best step)."""
    best, counter, best_step, checks = None, 0, None, iter(scores)
    for step in range(1, steps + 1):
        if step % every:
            continue
        value = next(checks)
        if best is None or value >= best:
            best, counter, best_step = value, 0, step
        else:
            counter += 1
            if counter >= patience:
                return step, best_step
    return None, best_step


def upstream_loss_stop_step(losses: list[float], every: int, patience: int, steps: int) -> tuple[int | None, int]:
    """BenchmarkTransferLearning V1 by hand: a check improves only on a strictly lower validation loss (reset and
    save); otherwise count one and stop once the count exceeds patience. (stop step, best step)."""
    best, counter, best_step, checks = math.inf, 0, None, iter(losses)
    for step in range(every, steps + 1, every):
        loss = next(checks)
        if loss < best:
            best, counter, best_step = loss, 0, step
        else:
            counter += 1
            if counter > patience:
                return step, best_step
    return None, best_step


@pytest.mark.parametrize("preset", ["ssl-transfer", "benchmark-transfer"])
@pytest.mark.parametrize("scores", [[0.5, 0.6, 0.55, 0.6, 0.58, 0.57, 0.56, 0.9, 0.9],
                                    [0.3, 0.2, 0.4, 0.4, 0.35, 0.5, 0.45, 0.44, 0.43, 0.1]])
def test_finetune_stops_at_the_upstream_step_and_restores_the_best_weights(scores, preset, monkeypatch):
    import torch

    from ssl_zoo.evaluation import finetune as ft
    from ssl_zoo.runtime import Speed

    labels = np.arange(24) % 3
    pixels = (np.random.default_rng(0).random((24, 8, 8)) * 255).astype(np.uint8)
    parts = {k: Samples(pixels, labels, "multiclass", ("a", "b", "c")) for k in ("train", "val")}
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 3))
    snapshots, queue = {}, iter(scores)

    def scripted(net, samples, transform, speed, batch_size):
        value = next(queue)
        snapshots[len(snapshots) + 1] = copy.deepcopy(net.state_dict())
        return {"accuracy": value, "mean_per_class_accuracy": value, "auc": value, "loss": 1 - value}

    monkeypatch.setattr(ft, "evaluate", scripted)
    if preset == "ssl-transfer":
        settings = resolve("finetune", steps=40, eval_every=4, batch_size=8, select_on="accuracy").settings
        stop, best = upstream_stop_step(scores, 4, 3, 40)
    else:  # selection on the loss (1 - score here), plateau schedule, count > patience; the best epoch is tested
        settings = resolve("finetune", preset, steps=40, eval_every=4, batch_size=8, patience=2).settings
        stop, best = upstream_loss_stop_step([1 - s for s in scores], 4, 2, 40)
    identity = lambda image: torch.as_tensor(np.asarray(image), dtype=torch.float32)[None].expand(3, -1, -1) / 255
    run = ft.fit(net, parts, (identity, identity), Speed.fast("cpu"), seed=0, settings=settings, lr=0.1,
                 weight_decay=0.0, validate=True, progress=False)
    assert run["stopped_at_step"] == stop and run["best_step"] == best
    # the best check's weights are back: on a stop (ssl-transfer's live reference restored nothing), and always for
    # BenchmarkTransfer, which tests its best epoch
    if stop is not None or preset == "benchmark-transfer":
        best_state = snapshots[best // 4]
        assert all(torch.equal(best_state[k], v) for k, v in net.state_dict().items())


# ---------------------------------------------------------------------------------------------------- segmentation


def test_segmentation_schedule_and_dice_loss_follow_benchmark_transfer():
    import torch

    from ssl_zoo.evaluation.segment import cosine_anneal, dice_loss

    for epoch in (0, 7, 100, 199):
        assert cosine_anneal(epoch, 200, 1e-3) == pytest.approx(1e-3 / 2 * (math.cos(math.pi * epoch / 200) + 1))
    probs = torch.tensor([[[[0.9, 0.2], [0.6, 0.0]]]])
    masks = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]]])
    hand = 1 - (2 * (0.9 + 0.6) + 1) / (3 + 1.7 + 1)
    assert float(dice_loss(probs, masks)) == pytest.approx(hand)


def test_multiclass_masks_score_dice_per_class_with_the_empty_rule():
    import torch

    from ssl_zoo.evaluation.segment_masks import dice_iou, foreground

    ids = torch.tensor([[[[0, 1, 1, 2], [0, 0, 2, 2]]]], dtype=torch.float32)  # 2 pixels of class 1, 3 of class 2
    logits = torch.full((1, 4, 2, 4), -5.0)  # background + 3 classes; class 3 absent from truth and prediction
    predicted_ids = [[0, 1, 2, 2], [0, 0, 2, 1]]
    for r, row in enumerate(predicted_ids):
        for c, k in enumerate(row):
            logits[0, k, r, c] = 5.0
    probs = logits.softmax(1)[:, 1:]
    dice, iou = dice_iou(probs, foreground(ids, 3), 3)
    # class 1: tp 1, fp 1, fn 1 -> 2/4; class 2: tp 2, fp 1, fn 1 -> 4/6; class 3 empty vs empty -> 1
    assert float(dice[0]) == pytest.approx((2 / 4 + 4 / 6 + 1.0) / 3)
    assert float(iou[0]) == pytest.approx((1 / 3 + 2 / 4 + 1.0) / 3)


def test_unet_entry_transfers_its_encoder_only_unless_asked_and_the_head_is_fresh(tmp_path_factory):
    import torch

    import ssl_zoo
    from ssl_zoo.converters.convert import convert_checkpoint
    from ssl_zoo.evaluation.segment import build_unet
    from ssl_zoo.registry import get_entry

    from .fixtures import build

    root = tmp_path_factory.mktemp("dira-unet")
    fixture = build("dira", root / "files", "default")
    folder = convert_checkpoint(get_entry("dira"), fixture.path, "0" * 64, dest=root / "folder")
    stored = ssl_zoo.load(folder, task="segmentation", classes=1).state_dict()
    torch.manual_seed(0)
    fresh = build_unet(folder, progress=False)[0].state_dict()
    kept = build_unet(folder, keep_decoder=True, progress=False)[0].state_dict()
    same = lambda state, prefix: all(torch.equal(state[k], stored[k]) for k in stored if k.startswith(prefix))
    assert same(fresh, "encoder.") and same(kept, "encoder.") and same(kept, "decoder.")
    assert not same(fresh, "decoder.")
    assert not same(fresh, "segmentation_head.") and not same(kept, "segmentation_head.")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_lists_presets_and_records_command_line_overrides(r18_folder, tmp_path, capsys):
    import json

    from ssl_zoo.cli.main import main

    from .test_eval_support import learnable_samples  # noqa: F811

    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert "ssl-transfer (default for fewshot, finetune, invariance, linear, multiview, reconstruction, saliency)" \
        in listing and "[segment]" in listing and "[saliency]" in listing
    data = learnable_samples(40, classes=2)
    np.savez(tmp_path / "data.npz", train_images=data.items[:30], train_labels=data.targets[:30, None],
             test_images=data.items[30:], test_labels=data.targets[30:, None])
    code = main(["probe", str(r18_folder), str(tmp_path / "data.npz"), "--preset", "ssl-transfer", "--C", "0.5",
                 "--image-size", "32", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0
    record = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert record["preset"]["preset"] == "ssl-transfer" and set(record["preset"]["overridden"]) == {"C", "image_size"}
    assert record["trials"][0]["C"] == 0.5
    assert main(["probe", str(r18_folder), str(tmp_path / "data.npz"), "--preset", "magical"]) != 0
    assert "presets for linear: ssl-transfer" in capsys.readouterr().err


def test_ssl_transfer_finetune_search_picks_the_best_validation_pair(r18_folder):
    from ssl_zoo.evaluation.finetune import finetune

    from .test_eval_support import learnable_samples  # noqa: F811

    record = finetune(r18_folder, learnable_samples(40, classes=2), steps=4, batch_size=8, image_size=32,
                      search=True, grid_size=1, early_stopping=False, progress=False)
    trial = record["trials"][0]
    pairs = np.array([(g["lr"], g["weight_decay"]) for g in trial["search"]])
    assert np.allclose(pairs, [(1e-4, 0.0), (1e-4, 1e-2)], rtol=1e-6, atol=0)  # (lr, wd / lr), wd in [0, 1e-6]
    scores = [g["val"]["accuracy"] for g in trial["search"]]
    best = trial["search"][int(np.argmax(scores))]  # upstream: strictly better only, so the first of equals
    assert (trial["lr"], trial["weight_decay"]) == (best["lr"], best["weight_decay"])
    assert trial["steps_run"] == 4 and trial["stopped_at_step"] is None
    assert record["preset"]["settings"]["optimizer"] == "sgd" and record["summary"]["accuracy"]["n"] == 1
