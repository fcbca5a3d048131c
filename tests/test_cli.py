"""The ``ssl-zoo`` command line, in-process (``cli.main``) and, for start-up cost, in a subprocess."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssl_zoo import __version__, inventory, registry
from ssl_zoo.store import cache
from ssl_zoo.cli import catalog, main as cli
from ssl_zoo.store.hashes import record_digest

from .conftest import pin

REPO = Path(__file__).resolve().parents[1]
UNPINNED = "moco-v2"  # no sha256 upstream: checked against the digest recorded on first download
PINNED = "supervised-r50"  # torchvision: sha256 prefix pinned in the registry (conftest unpins it for fixtures)
PINNED_PREFIX = "0676ba61"
HEAVY = ("torch", "timm", "tensorflow", "jax")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(cache.HOME_ENV, str(tmp_path / "home"))
    for var in (cache.MIRROR_ENV, cache.QUIET_ENV, cache.DEBUG_ENV, *cache.OFFLINE_ENVS):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "home"


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run ``ssl-zoo argv`` in-process; return exit code, stdout, stderr."""
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def put_download(name: str, data: bytes = b"upstream bytes " * 100, record: bool = True) -> Path:
    """Place an entry's checkpoint in the downloads cache, as a finished pull leaves it."""
    filename = registry.get_entry(name).checkpoint.filename
    path = cache.download_path(name, filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if record:
        record_digest(name, filename, hashlib.sha256(data).hexdigest())
    return path


def put_folder(name: str) -> Path:
    """Write a (tiny) model folder for ``name`` with the real writer and card functions."""
    import torch

    from ssl_zoo.architectures import get_arch
    from ssl_zoo.modelfolder.card import Provenance, config_dict, model_card
    from ssl_zoo.modelfolder.files import write_folder

    entry = registry.get_entry(name)
    spec = get_arch(entry.arch)
    prov = Provenance(entry.checkpoint.url, entry.checkpoint.filename, "0" * 64, entry.family)
    texts = lambda sha: (config_dict(entry, spec, prov, sha), model_card(entry, spec, prov, sha))  # noqa: E731
    return write_folder(cache.model_dir(name), {"w": torch.zeros(2)}, {"format": "pt"}, texts)


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1 and err.startswith("ssl-zoo: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err


@pytest.fixture
def pinned(monkeypatch: pytest.MonkeyPatch) -> str:
    """Restore the registry's real pin on PINNED, which conftest removes for the fixtures' sake."""
    pin(monkeypatch, PINNED, sha256_prefix=PINNED_PREFIX)
    return PINNED


@pytest.fixture
def private_only(monkeypatch: pytest.MonkeyPatch) -> str:
    """A registry holding only one user-supplied entry."""
    entry = dataclasses.replace(registry.get_entry(UNPINNED), name="private-x", status="user-supplied",
                                how_to_get="ask the authors for the file")
    monkeypatch.setattr(registry, "all_entries", lambda: {entry.name: entry})
    return entry.name


# ---- list -------------------------------------------------------------------------------------------------

def test_list_table(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "list", "--wide")
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["NAME", "ARCH", "METHOD", "PRETRAINING", "DATA", "LICENCE", "STATUS"]
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + len(registry.list_models())
    assert "CC-BY-NC-4.0 (non-commercial)" in next(line for line in lines if line.startswith("moco-v3 "))


def test_list_filters_and_json(capsys: pytest.CaptureFixture) -> None:
    _, out, _ = run(capsys, "list", "moco-v", "--json")
    assert [r["name"] for r in json.loads(out)] == ["lidc-moco-v2", "moco-v1", "moco-v2", "moco-v3"]
    _, out, _ = run(capsys, "list", "--commercial", "--json")
    records = json.loads(out)
    assert records and not any(r["non_commercial"] for r in records)
    assert "moco-v3" not in {r["name"] for r in records}
    _, out, _ = run(capsys, "list", "supervised-*", "--arch", "resnet18", "--json")
    assert [r["name"] for r in json.loads(out)] == ["supervised-r18"]
    assert set(json.loads(out)[0]) == {"name", "arch", "method", "pretraining_data", "license", "non_commercial",
                                       "status"}


def test_list_no_match(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "list", "nothing-like-this")
    assert (code, out) == (0, "") and "no entry matches" in err


def test_list_status_column(capsys: pytest.CaptureFixture) -> None:
    put_download(UNPINNED)
    put_folder("moco-v1")
    _, out, _ = run(capsys, "list", "--json")
    status = {r["name"]: r["status"] for r in json.loads(out)}
    assert status[UNPINNED] == "downloaded" and status["moco-v1"] == "converted" and status["moco-v3"] == "-"


def truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])


def test_list_reports_a_damaged_folder_as_damaged(capsys: pytest.CaptureFixture) -> None:
    truncate_weights(put_folder("moco-v1"))
    put_download(UNPINNED)
    (put_folder(UNPINNED) / "config.json").write_text("{not json")
    _, out, _ = run(capsys, "list", "--json")
    status = {r["name"]: r["status"] for r in json.loads(out)}
    assert status["moco-v1"] == status[UNPINNED] == "damaged"
    state = inventory.entry_state("moco-v1")
    assert state.status == "damaged" and "ssl-zoo pull moco-v1 --force" in state.problem
    _, out, _ = run(capsys, "list", "moco-v1")
    assert out.splitlines()[2].split()[-1] == "damaged" and "damaged = " in catalog.STATUS_LEGEND


def test_list_user_supplied(capsys: pytest.CaptureFixture, private_only: str) -> None:
    _, out, _ = run(capsys, "list")
    assert out.splitlines()[2].split()[-1] == "user-supplied"


def test_list_imports_no_framework_and_is_fast(home: Path) -> None:
    put_folder("moco-v1")  # each folder's cheap check (config.json, safetensors header) runs torch-free
    truncate_weights(put_folder("moco-v2"))
    script = ("import sys; from ssl_zoo.cli.main import main; rc = main(['list', '--quiet']); "
              f"print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr); sys.exit(rc)")
    env = {**os.environ, cache.HOME_ENV: str(home), "PYTHONPATH": str(REPO)}
    walls = []
    for _ in range(2):  # the best of two: the first may compile bytecode
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip() == "[]", f"`ssl-zoo list` imported {proc.stderr.strip()}"
        assert "moco-v2" in proc.stdout and "damaged" in proc.stdout
    assert min(walls) < 1.0, walls


def test_python_dash_m(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "ssl_zoo", "--version"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, cache.HOME_ENV: str(tmp_path)})
    assert proc.returncode == 0 and proc.stdout.strip() == f"ssl-zoo {__version__}"


# ---- info -------------------------------------------------------------------------------------------------

def test_info_text(capsys: pytest.CaptureFixture) -> None:
    entry = registry.get_entry(UNPINNED)
    code, out, _ = run(capsys, "info", UNPINNED)
    assert code == 0
    for text in (entry.paper_url, entry.code_url, entry.preprocessing.describe(), entry.checkpoint.filename,
                 entry.checkpoint.url, "not pinned", str(cache.model_dir(UNPINNED)), "model folder complete: no"):
        assert text in out, text
    from ssl_zoo.converters.families import get_family

    assert all(rule in out for rule in get_family(entry.family).describe())


def test_info_json(capsys: pytest.CaptureFixture, pinned: str) -> None:
    put_folder(PINNED)
    code, out, _ = run(capsys, "info", PINNED, "--json")
    info = json.loads(out)
    assert code == 0 and info["name"] == PINNED and info["license"] == "BSD-3-Clause"
    assert info["sources"][0]["pin"].startswith("pinned by the registry (sha256 prefix")
    assert info["sources"][0]["present"] is False
    assert info["cache"] == {"state": "converted", "downloads_dir": str(cache.downloads_dir(PINNED)),
                             "model_folder": str(cache.model_dir(PINNED)), "model_folder_complete": True,
                             "model_folder_problem": None}
    assert info["converter"]["rules"] and info["preprocessing"]["input_size"] == [3, 224, 224]


def test_unknown_name_is_one_line_with_suggestion(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "info", "mocov2")
    assert (code, out) == (1, "")
    assert_one_line_error(err, "unknown model 'mocov2'", "did you mean moco-v2")


def test_debug_shows_traceback(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.DEBUG_ENV, "1")
    code, _, err = run(capsys, "info", "mocov2")
    assert code == 1 and "Traceback" in err and err.splitlines()[-1].startswith("ssl-zoo: error: unknown model")


# ---- errors and usage -------------------------------------------------------------------------------------

def test_interrupt(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(names: object) -> list:
        raise KeyboardInterrupt

    monkeypatch.setattr(inventory, "verify", interrupted)
    code, _, err = run(capsys, "verify")
    assert code == 130
    assert_one_line_error(err, cli.INTERRUPTED)


def test_unexpected_error_is_one_line_and_its_traceback_on_request(capsys: pytest.CaptureFixture,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inventory, "verify", lambda names: 1 / 0)
    code, _, err = run(capsys, "verify")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert all(words in err for words in ("ssl-zoo verify", "ZeroDivisionError", "SSL_ZOO_DEBUG=1", "report"))
    monkeypatch.setenv("SSL_ZOO_DEBUG", "1")
    code, _, err = run(capsys, "verify")
    assert code == 1 and "Traceback" in err and "1 / 0" in err


@pytest.mark.parametrize("argv", [[], ["pull"], ["pull", UNPINNED, "--all"], ["convert", UNPINNED],
                                  ["mirror"], ["list", "--bogus"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and "error:" in err


def test_version_and_quiet_anywhere(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out
    assert run(capsys, "--quiet", "list")[0] == 0
    assert run(capsys, "list", "-q")[0] == 0


# ---- pull / convert ---------------------------------------------------------------------------------------

def test_pull_offline_failure_is_a_row_and_exit_1(capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_ZOO_OFFLINE", "1")
    code, out, err = run(capsys, "pull", UNPINNED, "--quiet", "--json")
    [row] = json.loads(out)
    assert code == 1 and row["status"] == "failed" and "offline" in row["error"] and row["folder"] is None
    assert err == ""  # --quiet


def test_pull_all_skips_user_supplied(capsys: pytest.CaptureFixture, private_only: str) -> None:
    code, out, _ = run(capsys, "pull", "--all", "-q")
    assert code == 0
    row = out.splitlines()[2]
    assert row.startswith(private_only) and "skipped (user-supplied)" in row and "ask the authors" in row


def test_pull_user_supplied_by_name_fails(capsys: pytest.CaptureFixture, private_only: str) -> None:
    code, out, _ = run(capsys, "pull", private_only, "-q", "--json")
    [row] = json.loads(out)
    assert code == 1 and row["status"] == "failed" and "ask the authors" in row["error"]


def test_pull_unknown_name(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "pull", "moco-v9", "-q")
    assert (code, out) == (1, "")
    assert_one_line_error(err, "unknown model 'moco-v9'")


def test_convert_missing_file(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, out, err = run(capsys, "convert", UNPINNED, "--from-file", str(tmp_path / "nope.pth.tar"))
    assert (code, out) == (1, "")
    assert_one_line_error(err, "nope.pth.tar is not a file")


def test_convert_refuses_a_file_that_breaks_the_pin(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                    pinned: str) -> None:
    wrong = tmp_path / "resnet50.pth"
    wrong.write_bytes(b"not the torchvision file")
    code, _, err = run(capsys, "convert", PINNED, "--from-file", str(wrong))
    assert code == 1
    assert_one_line_error(err, "does not match", "pinned in the registry")
    assert not cache.downloads_dir(PINNED).exists()


# ---- verify -----------------------------------------------------------------------------------------------

def verify_json(capsys: pytest.CaptureFixture, *names: str) -> tuple[int, list[dict]]:
    code, out, _ = run(capsys, "verify", *names, "--json")
    return code, json.loads(out)


def test_verify_nothing_cached(capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(capsys, "verify")
    assert code == 0 and "nothing to verify" in err and json.loads(run(capsys, "verify", "--json")[1]) == []


def test_verify_ok_table(capsys: pytest.CaptureFixture) -> None:
    download = put_download(UNPINNED)
    folder = put_folder(UNPINNED)
    code, out, _ = run(capsys, "verify", "--wide")
    assert code == 0 and out.splitlines()[0].split() == ["NAME", "STATUS", "ITEM", "MESSAGE"]
    assert {(line.split()[1], line.split()[2]) for line in out.splitlines()[2:]} == {("ok", str(download)),
                                                                                       ("ok", str(folder))}


def test_verify_corrupt_download(capsys: pytest.CaptureFixture) -> None:
    put_download(UNPINNED).write_bytes(b"flipped bits")
    code, results = verify_json(capsys)
    assert code == 1 and [r["status"] for r in results] == ["mismatch"]
    assert "recorded in" in results[0]["message"]
    code, _, err = run(capsys, "verify")  # the table cuts the message to fit; stderr holds it whole
    assert code == 1 and err.strip() == f"{UNPINNED}: {results[0]['message']}"


def test_verify_pinned_mismatch_and_unrecorded(capsys: pytest.CaptureFixture, pinned: str) -> None:
    put_download(PINNED, record=False)
    put_download(UNPINNED, record=False)
    code, results = verify_json(capsys)
    assert code == 1
    assert {r["name"]: r["status"] for r in results} == {PINNED: "mismatch", UNPINNED: "unchecked"}


def test_verify_damaged_and_incomplete_folders(capsys: pytest.CaptureFixture) -> None:
    with open(put_folder(UNPINNED) / "model.safetensors", "ab") as fh:
        fh.write(b"\0")
    (put_folder("moco-v1") / "config.json").unlink()
    code, results = verify_json(capsys)
    assert code == 1
    assert {r["name"]: r["status"] for r in results} == {"moco-v1": "missing", UNPINNED: "mismatch"}
    assert "config.json" in next(r["message"] for r in results if r["name"] == "moco-v1")


def test_verify_named_entry_with_nothing_cached(capsys: pytest.CaptureFixture) -> None:
    code, results = verify_json(capsys, "moco-v3")
    assert code == 1 and [(r["name"], r["status"]) for r in results] == [("moco-v3", "missing")]


# ---- mirror export ----------------------------------------------------------------------------------------

def test_mirror_export_layout_and_idempotence(capsys: pytest.CaptureFixture, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    source = put_download(UNPINNED)
    put_folder("moco-v1")  # converted, no download: nothing to export
    mirror = tmp_path / "mirror"
    code, out, _ = run(capsys, "mirror", "export", str(mirror))
    target = mirror / UNPINNED / source.name
    assert code == 0 and out.splitlines() == [str(target)] and target.read_bytes() == source.read_bytes()
    assert run(capsys, "mirror", "export", str(mirror))[1] == ""  # already up to date
    target.write_bytes(b"stale")
    assert run(capsys, "mirror", "export", str(mirror), "--models", UNPINNED)[1].splitlines() == [str(target)]
    assert target.read_bytes() == source.read_bytes()
    from ssl_zoo.store.sources import source_urls  # the layout SSL_ZOO_MIRROR reads

    monkeypatch.setenv(cache.MIRROR_ENV, mirror.as_uri() + "/")
    entry = registry.get_entry(UNPINNED)
    assert source_urls(entry, entry.checkpoint) == [target.as_uri()]


def test_mirror_export_refuses_corrupt_file(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    put_download(UNPINNED).write_bytes(b"corrupted after download")
    code, out, err = run(capsys, "mirror", "export", str(tmp_path / "mirror"))
    assert (code, out) == (1, "")
    assert_one_line_error(err, "does not match")
    assert not (tmp_path / "mirror").exists()


def test_mirror_export_named_entry_not_downloaded(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run(capsys, "mirror", "export", str(tmp_path / "mirror"), "--models", "moco-v3")
    assert code == 1
    assert_one_line_error(err, "moco-v3/r-50-300ep.pth.tar is not in the downloads cache")
