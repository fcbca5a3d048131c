"""Runs never lose work: the model folder without matplotlib, an existing run refused, a resumed run extended,
DiRA's dira stage started from its dir run, and the card's recipe section."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import ssl_zoo
from ssl_zoo.cli.main import main
from ssl_zoo.errors import ModelFolderError, PictureWarning, ResumeError, RunExistsError
from ssl_zoo.pretraining import checkpoint

from .pretrain_data import SIZE, write_images
from .pretrain_data import one_thread  # noqa: F401 (an autouse-by-mark fixture)

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(batch_size=8, arch="resnet18", image_size=SIZE, device="cpu", progress=False,
            options={"queue": 16})


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    return write_images(tmp_path_factory.mktemp("runs_images") / "images.npz")


def test_model_folder_is_written_without_matplotlib(images, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # import of any of them raises ImportError
    with pytest.warns(PictureWarning, match='pip install "ssl_zoo\\[eval\\]"'):
        written = ssl_zoo.pretrain("moco-v2", images, tmp_path, epochs=1, **TINY)
    assert ssl_zoo.load(written["model"]) is not None
    assert not (tmp_path / "loss_curve.png").exists() and "loss curve" not in (written["model"] / "README.md").read_text()


def test_existing_run_is_refused_then_overwritten_and_extended(images, tmp_path, capsys):
    first = ssl_zoo.pretrain("moco-v2", images, tmp_path, epochs=1, **TINY)
    assert (first["model"] / "loss_curve.png").is_file() and "![loss curve]" in (first["model"] / "README.md").read_text()
    args = ["pretrain", "--method", "moco-v2", "--data", str(images), "--out", str(tmp_path), "--epochs", "1",
            "--batch-size", "8", "--arch", "resnet18", "--image-size", str(SIZE), "-o", "queue=16",
            "--device", "cpu", "--quiet"]
    assert main(args) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err and "--overwrite" in err
    with pytest.raises(RunExistsError):
        ssl_zoo.pretrain("moco-v2", images, tmp_path, epochs=1, **TINY)
    # extending: 1 epoch (2 steps) done, resume with 3 epochs runs 4 more under the recomputed schedule
    extended = ssl_zoo.pretrain("moco-v2", images, tmp_path, epochs=3, resume=True, **TINY)
    state = torch.load(tmp_path / checkpoint.CHECKPOINT, weights_only=True)
    assert state["step"] == 6 and len(state["losses"]) == 6
    training = json.loads((extended["model"] / "config.json").read_text())["ssl_zoo"]["training"]
    assert training["epochs"] == 3 and "recomputes the schedule" in training["settings"]["resume_rule"]
    with pytest.raises(ResumeError, match="past the 4 steps"):
        ssl_zoo.pretrain("moco-v2", images, tmp_path, epochs=2, resume=True, **TINY)
    assert main([*args, "--overwrite"]) == 0
    assert torch.load(tmp_path / checkpoint.CHECKPOINT, weights_only=True)["step"] == 2


def test_card_lists_the_recipe_and_dira_stage_two_starts_from_stage_one(images, tmp_path):
    stage1 = ssl_zoo.pretrain("dira", images, tmp_path / "dir", preset="dira-dir", epochs=1, **TINY)
    training = json.loads((stage1["model"] / "config.json").read_text())["ssl_zoo"]["training"]
    recipe = training["settings"]
    assert recipe["preset"] == "dira-dir" and recipe["options"]["mode"] == "dir"
    assert recipe["settings"]["mean"] == [0.0, 0.0, 0.0] and recipe["settings"]["clip"] is None
    assert "epochs 1 (set by the user; paper recipe: 1200)" in recipe["deviations"]
    assert "option queue=16 (set by the user; paper recipe: 65536)" in recipe["deviations"]
    card = (stage1["model"] / "README.md").read_text()
    assert "## Recipe (preset `dira-dir`)" in card and "mirror image half of the time" in card
    assert json.loads((stage1["model"] / "config.json").read_text())["pretrained_cfg"]["std"] == [1.0, 1.0, 1.0]
    with pytest.raises(ResumeError, match="pass --init RUN_DIR"):
        ssl_zoo.pretrain("dira", images, tmp_path / "dira", preset="dira-dira", epochs=1, **TINY)
    from ssl_zoo.pretraining.base import MethodSettings, build_method
    from ssl_zoo.pretraining.run import initialise

    method = build_method("dira", MethodSettings(arch="resnet18", image_size=SIZE, options={"queue": 16,
                                                                                          "mode": "dira"}))
    initialise(method, tmp_path / "dir")  # the whole dir state, strictly: U-Net, heads, key encoder, queue
    trained = torch.load(tmp_path / "dir" / checkpoint.CHECKPOINT, weights_only=True)["method"]
    assert all(torch.equal(v, trained[k]) for k, v in method.state_dict().items())
    wider = build_method("dira", MethodSettings(arch="resnet18", image_size=SIZE, options={"queue": 32}))
    with pytest.raises(ModelFolderError, match="other method options"):
        initialise(wider, tmp_path / "dir")
    other = build_method("moco-v2", MethodSettings(arch="resnet18", image_size=SIZE, options={"queue": 16}))
    with pytest.raises(ModelFolderError, match="is a dira resnet18 run"):
        initialise(other, tmp_path / "dir")


def test_chaitanya_global_trains_on_partition_batches(tmp_path):
    from .pretrain_data import write_volumes

    volumes = write_volumes(tmp_path / "volumes.npz")  # 4 volumes x 8 slices
    written = ssl_zoo.pretrain("chaitanya-global", volumes, tmp_path / "run", epochs=1, batch_size=8,
                               arch="resnet18", image_size=SIZE, device="cpu", progress=False,
                               options={"variant": "gd-minus"})
    training = json.loads((written["model"] / "config.json").read_text())["ssl_zoo"]["training"]
    assert training["steps"] == 2  # 2 volumes x 4 partitions per batch: 4 volumes make 2 batches
    assert training["settings"]["options"]["variant"] == "gd-minus"
    assert ssl_zoo.load(written["model"]) is not None
