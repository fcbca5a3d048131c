"""The evaluation subcommands end to end through ``ssl_zoo.cli.main`` on a tiny class folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ssl_zoo.cli.main import main

from .test_eval_support import brightness_images, r18_folder  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("classes")
    labels = np.arange(36) % 3
    for i, (image, label) in enumerate(zip(brightness_images(labels, seed=5), labels)):
        (root / f"class{label}").mkdir(exist_ok=True)
        Image.fromarray(image).save(root / f"class{label}" / f"{i}.png")
    return root


def test_probe_command_prints_json_and_writes_results(r18_folder, class_folder, tmp_path, capsys):
    code = main(["probe", str(r18_folder), str(class_folder), "--image-size", "32", "--out", str(tmp_path),
                 "--json", "--C", "1"])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["task"] == "multiclass" and record["summary"]["accuracy"]["mean"] > 1 / 3 + 0.25
    assert (tmp_path / "probe.json").is_file() and (tmp_path / "splits.json").is_file()


def test_compare_command_writes_table_and_plot(r18_folder, class_folder, tmp_path, capsys):
    code = main(["compare", str(r18_folder), "--data", str(class_folder), "--protocol", "probe", "--trials", "1",
                 "--label-fractions", "0.5", "1", "--metric", "accuracy", "--image-size", "32", "--out",
                 str(tmp_path)])
    assert code == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["MODEL", "LABELS", "METRIC"] and len(table) == 4
    assert (tmp_path / "label_efficiency.png").stat().st_size > 0 and (tmp_path / "results.md").stat().st_size > 0


def test_fewshot_command(r18_folder, class_folder, tmp_path, capsys):
    code = main(["fewshot", str(r18_folder), str(class_folder), "--n-way", "3", "--k-shot", "2", "--n-query", "3",
                 "--episodes", "20", "--image-size", "32", "--out", str(tmp_path)])
    assert code == 0 and "accuracy" in capsys.readouterr().out
    assert json.loads((tmp_path / "fewshot.json").read_text())["episodes"] == 20


def test_missing_dataset_is_a_one_line_error(r18_folder, tmp_path, capsys):
    assert main(["probe", str(r18_folder), str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ssl-zoo: error:") and "dataset not found" in err and "\n" not in err


def test_list_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys; from ssl_zoo.cli.main import main; main(['list']); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_compare_tiny_example_runs_quick(r18_folder, tmp_path, capsys):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "compare_tiny.py"
    sys.path.insert(0, str(path.parent))  # the examples import their shared _sources.py
    spec = importlib.util.spec_from_file_location("compare_tiny", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--models", str(r18_folder), "--out", str(tmp_path), "--quick"])
    assert [r["label_fraction"] for r in result["rows"]] == [0.2, 1.0]
    assert result["rows"][1]["mean"] > 1 / 3 + 0.25  # three balanced classes: chance is 1/3
    assert "| model | accuracy @ 20% labels | accuracy @ 100% labels |" in capsys.readouterr().out
