"""Loading model folders from a loopback stand-in of the Hub: ``hf-hub:`` refs, ``SSL_ZOO_SOURCE``, timm alone.

ssl_zoo passes ``HF_ENDPOINT`` to huggingface_hub at call time, so its loads run in this process; timm reads the
endpoint only when huggingface_hub is imported, so timm's load runs in a subprocess with a temporary ``HF_HOME``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import ssl_zoo
from ssl_zoo import errors, resolve
from ssl_zoo.store import cache
from ssl_zoo.modelfolder.files import read_weights
from ssl_zoo.registry import all_entries

from .conftest import pin
from .fakehub import FakeHub, make_model_folder

NAME = "supervised-r18"
REPO = "lab/resnet18.supervised-r18"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("hubfolder"), NAME)


@pytest.fixture(scope="module")
def fake_hub(folder: Path) -> FakeHub:
    with FakeHub() as server:
        server.add_folder(REPO, folder)
        yield server


@pytest.fixture
def endpoint(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.delenv(cache.SOURCE_ENV, raising=False)
    return fake_hub


@pytest.fixture
def published_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the registry entry an ``hf_repo``, as a published entry has."""
    entries = all_entries()
    monkeypatch.setitem(entries, NAME, dataclasses.replace(entries[NAME], hf_repo=REPO))


def same_tensors(model: torch.nn.Module, folder: Path) -> bool:
    expected = read_weights(folder)
    state = model.state_dict()
    return set(state) == set(expected) and all(torch.equal(state[k], v) for k, v in expected.items())


def weights_gets(server: FakeHub, repo: str = REPO) -> int:
    return sum(1 for method, path in server.requests if method == "GET" and path.startswith(repo)
               and path.endswith("model.safetensors"))


def test_load_hf_hub_ref_downloads_verifies_and_caches_by_commit(endpoint: FakeHub, folder: Path) -> None:
    model = ssl_zoo.load(f"hf-hub:{REPO}")
    assert same_tensors(model, folder)
    commit = (cache.hub_dir(REPO) / "refs" / "main").read_text().strip()
    local = cache.hub_dir(REPO) / commit
    assert sorted(p.name for p in local.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    gets = weights_gets(endpoint)
    assert same_tensors(ssl_zoo.load(f"hf-hub:{REPO}@{commit}"), folder)
    assert weights_gets(endpoint) == gets  # a pinned commit that is cached costs no download


def test_offline_uses_the_commit_the_branch_resolved_to(endpoint: FakeHub, folder: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ssl_zoo.load_state_dict(f"hf-hub:{REPO}")
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    before = len(endpoint.requests)
    assert same_tensors(ssl_zoo.load(f"hf-hub:{REPO}"), folder)
    assert len(endpoint.requests) == before
    with pytest.raises(errors.OfflineError, match="never fetched"):
        ssl_zoo.load(f"hf-hub:{REPO}@dev")
    with pytest.raises(errors.OfflineError, match="is not cached"):
        ssl_zoo.load(f"hf-hub:{REPO}@{'1' * 40}")
    assert len(endpoint.requests) == before


def test_tampered_weights_are_refused_and_nothing_is_kept(endpoint: FakeHub, folder: Path) -> None:
    repo = "lab/tampered"
    commit = endpoint.add_folder(repo, folder)
    endpoint.tamper(repo, "model.safetensors", offset=(folder / "model.safetensors").stat().st_size - 10)
    with pytest.raises(errors.ChecksumError, match="altered or damaged"):
        ssl_zoo.load(f"hf-hub:{repo}")
    assert not (cache.hub_dir(repo) / commit).exists()
    assert [p.name for p in cache.hub_dir(repo).iterdir()] == ["refs"]  # no temporary folder left behind


def test_weights_and_config_altered_together_are_caught_by_the_etag(endpoint: FakeHub, folder: Path) -> None:
    repo = "lab/forged"
    endpoint.add_folder(repo, folder)
    # config.json is rewritten to match the altered weights, but the Hub's LFS sha256 (ETag) is the original's
    data = endpoint.tamper(repo, "model.safetensors", offset=len(endpoint.served(repo, "model.safetensors")) - 10)
    config = json.loads(endpoint.served(repo, "config.json"))
    config["ssl_zoo"]["weights_sha256"] = hashlib.sha256(data).hexdigest()
    endpoint.forge(repo, "config.json", json.dumps(config).encode())
    with pytest.raises(errors.ChecksumError, match="Hub ETag"):
        ssl_zoo.load(f"hf-hub:{repo}")


def test_unknown_repo_and_bad_ref(endpoint: FakeHub) -> None:
    with pytest.raises(errors.HubError, match="cannot resolve hf-hub:lab/missing@main"):
        ssl_zoo.load("hf-hub:lab/missing")
    with pytest.raises(errors.HubError, match="not a Hub reference"):
        ssl_zoo.load("hf-hub:no-slash")


def test_timm_alone_loads_the_served_folder(endpoint: FakeHub, folder: Path, tmp_path: Path) -> None:
    script = (
        "import sys, timm, torch\n"
        f"m = timm.create_model('hf-hub:{REPO}', pretrained=True)\n"
        "assert 'ssl_zoo' not in sys.modules\n"
        "torch.save({k: v for k, v in m.state_dict().items()}, sys.argv[1])\n"
    )
    out = tmp_path / "timm_state.pt"
    env = {**os.environ, "HF_ENDPOINT": endpoint.url, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "0"}
    done = subprocess.run([sys.executable, "-c", script, str(out)], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    state = torch.load(out, weights_only=True)
    expected = read_weights(folder)
    assert set(state) >= set(expected) and all(torch.equal(state[k], v) for k, v in expected.items())


def test_source_hub_takes_the_registry_entry_from_the_hub(endpoint: FakeHub, folder: Path, published_entry: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.SOURCE_ENV, "hub")
    monkeypatch.setenv(cache.MIRROR_ENV, "http://127.0.0.1:9")  # upstream must not be needed
    assert same_tensors(ssl_zoo.load(NAME), folder)
    assert (cache.model_dir(NAME) / "config.json").read_bytes() == (folder / "config.json").read_bytes()


def test_source_auto_falls_back_to_upstream_once_with_a_warning(mirror, fixtures, published_entry: None,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(resolve, "_announced", set())
    with pytest.warns(errors.HubFallbackWarning, match="not fetched from the Hub"):
        ssl_zoo.load_state_dict(NAME)
    assert mirror.count(f"{NAME}/{fixtures[NAME].path.name}") == 1  # converted from the upstream file


def test_source_upstream_never_asks_the_hub(endpoint: FakeHub, mirror, published_entry: None,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.SOURCE_ENV, "upstream")
    before = len(endpoint.requests)
    ssl_zoo.load_state_dict(NAME)
    assert len(endpoint.requests) == before and len(mirror.requests) > 0


def test_source_choice_errors(endpoint: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.SOURCE_ENV, "hub")
    with pytest.raises(errors.HubError, match="no hf_repo"):
        ssl_zoo.load_state_dict(NAME)
    monkeypatch.setenv(cache.SOURCE_ENV, "cloud")
    with pytest.raises(errors.SettingError, match="one of auto, hub, upstream"):
        ssl_zoo.load_state_dict(NAME)


def test_hub_folder_converted_from_another_upstream_file_is_refused(endpoint: FakeHub, published_entry: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pin(monkeypatch, NAME, sha256="0" * 64)  # the registry pins a different upstream file than the one converted
    monkeypatch.setenv(cache.SOURCE_ENV, "hub")
    with pytest.raises(errors.ChecksumError, match="converted from"):
        ssl_zoo.load_state_dict(NAME)
    assert not cache.model_dir(NAME).exists()
