"""compare: paired significance checked by hand (DeLong from its definition, the paired bootstrap as a loop),
sharded runs equal to one run, resume skips finished runs, and data that cannot support the metric is refused.

The protocol is replaced by a fake whose per-image test scores are a seeded function of the model and the trial,
so the matrix logic is tested in milliseconds; two tests run the real probe end to end, one of them checking
the p-values against a hand loop over the scores the probe recorded.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ssl_zoo.evaluation import compare as compare_module
from ssl_zoo.evaluation.data import Samples

from .test_eval_support import learnable_samples, r18_folder, reinitialised_copy  # noqa: F401  (fixture)

CALLS: list[tuple[str, float, int]] = []
STRENGTH = {"strong": 2.0, "weak": 0.3, "same": 0.3}


def fake_probe(model, parts, *, out_dir, label_fraction, trials, seed, progress=True, **options):
    """Scores = strength x target + seeded noise; writes ``probe.json`` like the real protocol."""
    from ssl_zoo.evaluation.metrics import classification_metrics
    from ssl_zoo.evaluation.results import write_json

    assert trials == 1
    CALLS.append((model, label_fraction, seed))
    y = parts["test"].class_ids()
    noise = np.random.default_rng(seed).normal(size=len(y))
    scores = 1 / (1 + np.exp(-(STRENGTH[model] * label_fraction * (2 * y - 1) + noise)))
    test = classification_metrics("binary", y, scores)
    record = {"model": model, "trials": [{"test": test, "test_scores": scores.tolist()}]}
    write_json(Path(out_dir) / "probe.json", record)
    return record


@pytest.fixture
def fake(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(compare_module.PROTOCOLS, "probe", (__name__, "fake_probe", "probe.json"))


def binary_samples(n=200) -> Samples:
    labels = np.arange(n) % 2
    return Samples(np.zeros((n, 8, 8), np.uint8), labels.astype(np.int64), "binary", ("0", "1"))


def run(out, **kw):
    options = dict(protocol="probe", label_fractions=(0.5, 1.0), trials=3, resamples=50, progress=False)
    return compare_module.compare(["weak", "strong", "same"], binary_samples(), out, **{**options, **kw})


def hand_delong(y, a, b):
    """DeLong from the definition: psi over every (positive, negative) pair, structural components, z."""
    from scipy.stats import norm

    pos, neg = np.where(y == 1)[0], np.where(y == 0)[0]
    m, n = len(pos), len(neg)

    def psi(s):
        return (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])

    p_a, p_b = psi(a), psi(b)
    v10 = np.stack([p_a.mean(1), p_b.mean(1)])
    v01 = np.stack([p_a.mean(0), p_b.mean(0)])
    s = np.cov(v10) / m + np.cov(v01) / n
    z = (p_a.mean() - p_b.mean()) / math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return p_a.mean(), p_b.mean(), 2 * norm.sf(abs(z))


def test_delong_matches_the_definition_and_sklearn_auc():
    from sklearn.metrics import roc_auc_score

    from ssl_zoo.evaluation.significance import delong

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    a = np.round(y + rng.normal(0, 1, 80), 1)  # rounded: ties count one half
    b = np.round(y + rng.normal(0, 2, 80), 1)
    got = delong(y, a, b)
    auc_a, auc_b, p = hand_delong(y, a, b)
    assert got["auc_a"] == pytest.approx(roc_auc_score(y, a)) == pytest.approx(auc_a)
    assert got["auc_b"] == pytest.approx(auc_b)
    assert got["p_value"] == pytest.approx(p, rel=1e-9)


def test_paired_bootstrap_matches_a_hand_loop():
    from sklearn.metrics import roc_auc_score

    from ssl_zoo.evaluation.significance import paired_bootstrap

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    a = [y + rng.normal(0, 1, 60) for _ in range(2)]
    b = [y + rng.normal(0, 1.5, 60) for _ in range(2)]
    got = paired_bootstrap("binary", y, a, b, "auc", resamples=100, seed=7)
    draws, diffs = np.random.default_rng(7), []
    for _ in range(100):
        i = draws.integers(0, 60, 60)
        if len(np.unique(y[i])) == 2:
            diffs.append(np.mean([roc_auc_score(y[i], s[i]) for s in a]) - np.mean([roc_auc_score(y[i], s[i]) for s in b]))
    diffs = np.array(diffs)
    assert got["p_value"] == pytest.approx(min(1, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean())))
    observed = np.mean([roc_auc_score(y, s) for s in a]) - np.mean([roc_auc_score(y, s) for s in b])
    assert got["difference"] == pytest.approx(observed)


def test_sharded_runs_merge_into_the_unsharded_table(fake, tmp_path):
    whole = run(tmp_path / "whole")
    assert len(CALLS) == 18 and whole["missing"] == []
    CALLS.clear()
    first = run(tmp_path / "sharded", shard="1/2")
    assert first["rows"] == [] and first["done"] == 9 and len(first["missing"]) == 9
    second = run(tmp_path / "sharded", shard=(2, 2))
    assert len(CALLS) == 18 and second["done"] == 18
    for name in ("results.csv", "results.md", "runs.csv"):
        assert (tmp_path / "whole" / name).read_text() == (tmp_path / "sharded" / name).read_text()
    strong = [r for r in whole["rows"] if r["model"] == "strong"]
    same = [r for r in whole["rows"] if r["model"] == "same"]
    assert all(r["p_value"] < 0.01 for r in strong) and all(r["p_value"] == 1.0 for r in same)
    assert all(r["p_value"] is None for r in whole["rows"] if r["model"] == "weak")  # the baseline


def test_resume_skips_finished_runs(fake, tmp_path):
    run(tmp_path, label_fractions=(1.0,), trials=2)
    CALLS.clear()
    (tmp_path / "runs" / "strong" / "fraction-1" / "trial-1" / "probe.json").unlink()
    result = run(tmp_path, label_fractions=(1.0,), trials=2)
    assert CALLS == [("strong", 1.0, 1)] and result["done"] == 6


def test_table_labels_the_interval_and_the_test(fake, tmp_path):
    result = run(tmp_path, test="delong")
    markdown = result["files"]["markdown"].read_text()
    assert "± = half-width of the 95 % confidence interval" in markdown and "DeLong" in markdown
    assert "p=" in markdown.splitlines()[3]
    for suffix in (".png", ".pdf", ".svg"):
        assert (tmp_path / f"label_efficiency{suffix}").stat().st_size > 1000


def test_bad_requests_are_refused_before_any_run(fake, tmp_path):
    from ssl_zoo.errors import DatasetError, SettingError, UnknownPresetError

    with pytest.raises(UnknownPresetError, match="valid protocols: probe, finetune"):
        run(tmp_path, protocol="prob")
    for bad in ({"shard": "3/2"}, {"shard": "x"}, {"trials": 0}, {"label_fractions": (2.0,)}, {"test": "t"}):
        with pytest.raises(SettingError):
            run(tmp_path, **bad)
    labels = np.zeros((20, 2))
    labels[:3, 0] = 1  # label 0: three positives; label 1: none at all
    tiny = Samples(np.zeros((20, 8, 8), np.uint8), labels, "multilabel", ("a", "b"))
    with pytest.raises(DatasetError, match="AUC is undefined"):
        compare_module.compare(["weak"], tiny, tmp_path, protocol="probe", seed=3, progress=False)
    assert CALLS == []


def test_compare_with_the_real_probe_writes_table_and_figure(r18_folder, tmp_path):
    result = compare_module.compare([r18_folder], learnable_samples(60), tmp_path, protocol="probe",
                                    label_fractions=(0.25, 1.0), trials=2, image_size=32, progress=False)
    assert [r["label_fraction"] for r in result["rows"]] == [0.25, 1.0] and all(r["n"] == 2 for r in result["rows"])
    markdown = (tmp_path / "results.md").read_text().splitlines()
    assert markdown[0] == "| model | auc @ 25% labels | auc @ 100% labels |"
    assert len(list((tmp_path / "runs").glob("*/fraction-0.25/trial-1/probe.json"))) == 1


def test_figure_intervals_are_clipped_to_the_metric_range():
    from ssl_zoo.evaluation.plots import clipped_errors

    rows = [{"mean": 0.97, "ci95": 0.1}, {"mean": 0.5, "ci95": 0.2}, {"mean": 0.02, "ci95": None}]
    below, above = clipped_errors(rows, 0.0, 1.0)
    assert below == pytest.approx([0.1, 0.2, 0.0]) and above == pytest.approx([0.03, 0.2, 0.0])
    assert clipped_errors(rows, None, None)[1][0] == pytest.approx(0.1)


def test_table_says_why_there_are_no_p_values_when_runs_hold_no_scores():
    rows = [{"model": "a", "label_fraction": 1.0, "mean": 0.8, "ci95": 0.05, "n": 3, "p_value": None, "test": None},
            {"model": "b", "label_fraction": 1.0, "mean": 0.7, "ci95": 0.05, "n": 3, "p_value": None,
             "test": "n/a: the protocol's records hold no per-image test_scores"}]
    text = compare_module.markdown_table(rows, "auc")
    assert "no p-values (the protocol's records hold no per-image test_scores)" in text and "p=" not in text


def test_without_matplotlib_the_table_is_written_and_the_figure_warns(fake, tmp_path, monkeypatch):
    import sys

    from ssl_zoo.errors import PictureWarning

    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(PictureWarning, match="ssl_zoo\\[eval\\]"):
        result = run(tmp_path, label_fractions=(1.0,), trials=2)
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "results.md").is_file()
    assert "plot" not in result["files"] and not (tmp_path / "label_efficiency.png").exists()


def test_real_probe_records_scores_and_compare_p_values_match_a_hand_computation(r18_folder, tmp_path):
    from sklearn.metrics import roc_auc_score

    from ssl_zoo.evaluation.splits import make_splits

    data = learnable_samples(100)
    data.targets[::5] = 1 - data.targets[::5]  # every fifth label flipped: AUCs below 1, so the p-values are not trivial
    other = reinitialised_copy(r18_folder, tmp_path / "other-init", seed=1)
    options = dict(protocol="probe", label_fractions=(0.5,), trials=2, image_size=32, resamples=300, seed=0,
                   progress=False)
    result = compare_module.compare([r18_folder, other], data, tmp_path / "out", **options)
    y = make_splits(data, seed=0)[0]["test"].class_ids()
    scores = {}
    for model in (r18_folder, other):
        scores[model] = []
        for trial in range(2):
            folder = tmp_path / "out" / "runs" / compare_module.safe_name(str(model)) / "fraction-0.5" / f"trial-{trial}"
            written = json.loads((folder / "probe.json").read_text())["trials"][0]
            assert written["test_scores"] == "test_scores-trial-0.npy"
            s = np.load(folder / written["test_scores"])
            assert s.dtype == np.float32 and s.shape == y.shape
            assert roc_auc_score(y, s) == pytest.approx(written["test"]["auc"], abs=1e-6)  # test-split order
            scores[model].append(s.astype(np.float64))
    draws, diffs = np.random.default_rng(0), []
    for _ in range(300):  # paired bootstrap by hand: the same images for both models, trial-mean AUC
        i = draws.integers(0, len(y), len(y))
        if len(np.unique(y[i])) == 2:
            diffs.append(np.mean([roc_auc_score(y[i], s[i]) for s in scores[other]])
                         - np.mean([roc_auc_score(y[i], s[i]) for s in scores[r18_folder]]))
    diffs = np.array(diffs)
    by_hand = min(1, 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()))
    row = next(r for r in result["rows"] if r["model"] == str(other))
    assert 0 < row["p_value"] == pytest.approx(by_hand) and row["test"] == "bootstrap"
    assert f"p={by_hand:.3g}" in (tmp_path / "out" / "results.md").read_text()
    again = compare_module.compare([r18_folder, other], data, tmp_path / "out", test="delong", **options)  # resumed
    by_hand = max(hand_delong(y, a, b)[2] for a, b in zip(scores[other], scores[r18_folder]))
    assert next(r for r in again["rows"] if r["model"] == str(other))["p_value"] == pytest.approx(by_hand, rel=1e-9)


def test_a_record_whose_scores_file_is_missing_is_one_clear_error(tmp_path):
    from ssl_zoo.errors import ResumeError
    from ssl_zoo.evaluation.report import read_record, report_trials

    parts = {k: binary_samples(10) for k in ("train", "val", "test")}
    runs = [{"test": {"auc": 0.5}, "train_indices": [0], "test_scores": np.linspace(0, 1, 10)}]
    report_trials("linear-probe", "m", parts, {}, runs, seed=0, label_fraction=1.0, metrics=("auc",),
                  out_dir=tmp_path, filename="probe.json")
    assert read_record(tmp_path / "probe.json")["trials"][0]["test_scores"] == pytest.approx(np.linspace(0, 1, 10))
    (tmp_path / "test_scores-trial-0.npy").unlink()
    with pytest.raises(ResumeError, match="test_scores-trial-0.npy, which is missing; delete probe.json"):
        read_record(tmp_path / "probe.json")
