"""Publishing: the calls made to ``HfApi`` (recorded), the dry run, the round trip through the loopback Hub, and
model cards that parse as Hub cards with valid metadata."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import huggingface_hub
import pytest
import torch

import ssl_zoo
from ssl_zoo import __version__, errors
from ssl_zoo.architectures import ArchKind, get_arch
from ssl_zoo.modelfolder.card import Provenance, config_dict, model_card
from ssl_zoo.cli.main import main
from ssl_zoo.modelfolder.files import read_weights
from ssl_zoo.store.hashes import sha256_file
from ssl_zoo.registry import get_entry, list_models

from .fakehub import FakeHub, RecordingHfApi, make_model_folder

NAME = "supervised-r18"
REPO = "lab/resnet18.supervised-r18"
FILES = ["README.md", "config.json", "model.safetensors"]
# The Hub's metadata rules for the fields ssl_zoo writes (huggingface.co/docs/hub/model-cards, repository licenses).
HUB_LICENSES = {"mit", "apache-2.0", "bsd-2-clause", "bsd-3-clause", "cc-by-nc-4.0", "other"}
HUB_PIPELINE_TAGS = {"image-feature-extraction", "image-classification", "image-segmentation"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("pubfolder"), NAME)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingHfApi:
    with FakeHub() as hub:
        api = RecordingHfApi(hub)
        monkeypatch.setattr(huggingface_hub, "HfApi", api)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield api


def calls(api: RecordingHfApi, name: str) -> list[dict]:
    return [kwargs for call, kwargs in api.calls if call == name]


def test_publish_creates_the_repo_and_uploads_the_folder_in_one_commit(recorder: RecordingHfApi,
                                                                        folder: Path) -> None:
    [plan] = ssl_zoo.publish([folder], namespace="lab")
    source = json.loads((folder / "config.json").read_text())["ssl_zoo"]["source_sha256"]
    assert plan.repo_id == REPO and plan.commit_url.endswith(recorder.hub.commit_of(REPO))
    assert calls(recorder, "create_repo") == [{"repo_id": REPO, "private": False, "exist_ok": True,
                                               "repo_type": "model"}]
    [upload] = calls(recorder, "upload_folder")
    assert upload["repo_id"] == REPO and sorted(upload["allow_patterns"]) == FILES
    assert upload["create_pr"] is False and upload["revision"] is None
    assert f"ssl_zoo {__version__}" in upload["commit_message"] and source in upload["commit_message"]
    [sent] = recorder.uploaded
    assert sent["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    assert sent["config.json"] == (folder / "config.json").read_bytes()
    assert f'hf-hub:{REPO}"' in sent["README.md"].decode() and "ORG/REPO" not in sent["README.md"].decode()
    assert "ORG/REPO" in (folder / "README.md").read_text()  # the cached folder itself is never modified


def test_published_folder_loads_back_through_the_hub(recorder: RecordingHfApi, folder: Path) -> None:
    ssl_zoo.publish(folder, namespace="lab")
    model = ssl_zoo.load(f"hf-hub:{REPO}")
    expected = read_weights(folder)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in expected.items())


def test_pull_request_and_branch_options(recorder: RecordingHfApi, folder: Path) -> None:
    [plan] = ssl_zoo.publish(folder, namespace="lab", create_pr=True, private=True)
    assert plan.commit_url.endswith("/discussions/1")
    ssl_zoo.publish(folder, namespace="lab", revision="v2")
    first, second = calls(recorder, "upload_folder")
    assert (first["create_pr"], first["revision"], second["create_pr"], second["revision"]) == (True, None, False, "v2")
    assert calls(recorder, "create_repo")[0]["private"] is True


def test_conflicting_options_and_bad_namespace_send_nothing(recorder: RecordingHfApi, folder: Path) -> None:
    with pytest.raises(errors.PublishError, match="drop --revision"):
        ssl_zoo.publish(folder, namespace="lab", create_pr=True, revision="dev")
    with pytest.raises(errors.PublishError, match="not a valid Hub repository id"):
        ssl_zoo.publish(folder, namespace="bad/namespace")
    assert recorder.calls == []


def test_a_damaged_folder_is_not_published(recorder: RecordingHfApi, folder: Path, tmp_path: Path) -> None:
    damaged = shutil.copytree(folder, tmp_path / NAME)
    data = bytearray((damaged / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (damaged / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(errors.ModelFolderError, match="differs from config.json"):
        ssl_zoo.publish(damaged, namespace="lab")
    assert recorder.calls == []


def test_a_users_own_folder_goes_the_same_way(recorder: RecordingHfApi, folder: Path, tmp_path: Path) -> None:
    mine = shutil.copytree(folder, tmp_path / "run-7")
    config = json.loads((mine / "config.json").read_text())
    config["ssl_zoo"] = {"name": "chest-finetune", "weights_sha256": config["ssl_zoo"]["weights_sha256"]}
    (mine / "config.json").write_text(json.dumps(config))
    [plan] = ssl_zoo.publish(f"local-dir:{mine}", namespace="lab")
    assert plan.repo_id == "lab/resnet18.chest-finetune"
    assert "source sha256 none (trained, not converted)" in plan.commit_message


def test_cli_dry_run_prints_exactly_what_would_be_uploaded(recorder: RecordingHfApi, folder: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["publish", str(folder), "--namespace", "lab", "--dry-run", "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert recorder.calls == []
    files = {f["name"]: f for f in record["files"]}
    assert sorted(files) == FILES and record["repo_id"] == REPO and record["commit_url"] == ""
    assert files["model.safetensors"]["sha256"] == sha256_file(folder / "model.safetensors")
    # the card is reported as it would be uploaded (pointing at the repo), not as it is in the folder
    assert files["README.md"]["sha256"] != sha256_file(folder / "README.md")
    assert main(["publish", str(folder), "--namespace", "lab", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"would upload {folder} to {REPO}@main") and out.count(REPO) == 4


def test_cli_upload_failure_is_one_line(monkeypatch: pytest.MonkeyPatch, folder: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    class Refusing(RecordingHfApi):
        def create_repo(self, repo_id: str, **kwargs: object) -> str:
            from huggingface_hub.utils import httpx

            response = httpx.Response(403, request=httpx.Request("POST", "https://hub.invalid/api/repos/create"))
            raise huggingface_hub.errors.HfHubHTTPError("403 Forbidden: no write access", response=response)

    monkeypatch.setattr(huggingface_hub, "HfApi", Refusing())
    assert main(["publish", str(folder), "--namespace", "lab"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "403 Forbidden" in err and "HF_TOKEN" in err


def card_for(name: str, config_extra: dict | None = None) -> str:
    entry = get_entry(name)
    spec = get_arch(entry.arch)
    prov = Provenance(entry.checkpoint.url, entry.checkpoint.filename, "a" * 64, entry.family, ("rule",), {}, "0.1")
    config = config_dict(entry, spec, prov, "b" * 64)
    config["ssl_zoo"].update(config_extra or {})
    return model_card(entry, spec, prov, "b" * 64, config)


@pytest.mark.parametrize("name", list_models())
def test_every_card_parses_as_a_hub_card_with_valid_metadata(name: str) -> None:
    card = huggingface_hub.ModelCard(card_for(name), ignore_metadata_errors=False)
    data = card.data.to_dict()
    entry = get_entry(name)
    timm_model = get_arch(entry.arch).kind is ArchKind.TIMM
    assert (data["library_name"] == "timm") == timm_model
    assert data["pipeline_tag"] in HUB_PIPELINE_TAGS
    assert data["license"] in HUB_LICENSES
    if data["license"] == "other":
        assert re.fullmatch(r"[a-z0-9.\-]+", data["license_name"]) and data["license_link"].startswith("http")
    assert data["datasets"] and all(re.fullmatch(r"[a-z0-9\-]+", d) for d in data["datasets"])
    assert all(isinstance(t, str) and t for t in data["tags"]) and len(set(data["tags"])) == len(data["tags"])
    body = card.text
    how_to_load = ("timm.create_model(\"hf-hub:", "safetensors.torch.load_file") if timm_model else ("task=",)
    for needle in (entry.paper, entry.pretraining_data, entry.checkpoint.url, "a" * 64, "b" * 64,
                   "ssl_zoo.load(", *how_to_load):
        assert needle in body
    assert ("Non-commercial use only" in body) == entry.non_commercial == ("non-commercial" in data["tags"])


def test_card_shows_parity_and_input_convention_when_the_config_has_them() -> None:
    parity = {"framework": "tensorflow", "max_abs_diff": 3.1e-06, "tolerance": 1e-4}
    body = card_for("simclr-v1", {"parity": parity, "input_convention": {"range": "[0,1]", "mean_std": "none"}})
    assert "## Parity" in body and "- max abs diff: 3.1e-06" in body and "- mean std: none" in body
    assert "## Parity" not in card_for(NAME)
