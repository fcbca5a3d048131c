"""ssl_zoo.converters.readers: container sniffing, safe torch loading, the restricted-pickle allow-list."""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import io
import os
import pickle
import subprocess
import sys
import tarfile
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ssl_zoo.converters.readers import READERS, read_checkpoint, sniff
from ssl_zoo.converters.readers import _reader as reader_for
from ssl_zoo.converters.readers.safe_pickle import ALLOW_LIST, PickleStub, stub_class
from ssl_zoo.converters.readers.sniff import TORCH_MAGIC_NUMBER
from ssl_zoo.errors import NotACheckpointError, UnsafePickleError

PL_CHECKPOINT = "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"


def state_dict() -> dict[str, torch.Tensor]:
    return {"conv1.weight": torch.randn(4, 3, 3, 3), "bn1.num_batches_tracked": torch.tensor(7),
            "fc.bias": torch.randn(5).expand(5)}


def save(obj: Any, path: Path, legacy: bool = False, **kwargs: Any) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy, **kwargs)
    return path


def one_line_error(exc: pytest.ExceptionInfo, path: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    return message


def assert_same(loaded: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> None:
    assert loaded.keys() == saved.keys()
    for key, tensor in saved.items():
        assert loaded[key].device.type == "cpu" and loaded[key].dtype == tensor.dtype
        assert torch.equal(loaded[key], tensor), key


# --- torch files that load -------------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_torch_file_round_trip_keeps_tensors_and_plain_values(tmp_path: Path, legacy: bool) -> None:
    sd = state_dict()
    extras = {"arch": "resnet50", "epoch": 200, "config": {"mask": 0.6, "densify_norm": "bn", "sizes": [1, 2]}}
    path = save({"module": sd, **extras}, tmp_path / "checkpoint.pth.tar", legacy)  # the extension lies

    assert sniff(path) == ("torch-legacy" if legacy else "torch-zip")
    loaded = read_checkpoint(path)
    assert_same(loaded["module"], sd)
    assert {k: loaded[k] for k in extras} == extras


def test_zip_loads_memory_mapped_and_legacy_does_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    read_checkpoint(save(state_dict(), tmp_path / "a.pth"))
    read_checkpoint(save(state_dict(), tmp_path / "b.pth", legacy=True))
    assert [(c["weights_only"], c["map_location"], c["mmap"]) for c in calls] == [(True, "cpu", True),
                                                                                 (True, "cpu", False)]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU to save from")
def test_tensors_saved_on_a_gpu_come_back_on_cpu(tmp_path: Path) -> None:
    loaded = read_checkpoint(save({"w": torch.randn(3, device="cuda")}, tmp_path / "gpu.pth"))
    assert loaded["w"].device.type == "cpu"


def test_legacy_magic_number_matches_torch() -> None:
    assert TORCH_MAGIC_NUMBER == torch.serialization.MAGIC_NUMBER


# --- containers that are not a readable torch file --------------------------------------------------------


def make_tar_stub(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:  # as pytorch's own test builds one: a tar with one empty member
        tar.addfile(tarfile.TarInfo("storages"), io.BytesIO(b""))
    return path


def make_html(path: Path) -> Path:
    path.write_text("\n  <!DOCTYPE html>\n<html><head><title>Google Drive - Virus scan warning</title></html>")
    return path


def make_truncated_zip(path: Path) -> Path:
    data = save({"w": torch.randn(256, 256)}, path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_plain_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:  # the layout of SimCLR's ResNet50_1x.zip (a TF1 checkpoint)
        zf.writestr("ResNet50_1x/checkpoint", 'model_checkpoint_path: "model.ckpt-225206"\n')
        zf.writestr("ResNet50_1x/model.ckpt-225206.index", b"\x00" * 64)
    return path


def make_random(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def make_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def make_plain_pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"step": 3}, protocol=4))
    return path


@pytest.mark.parametrize(("make", "kind", "words"), [
    (make_html, "html", ["web page", "--from-file", "browser/login"]),
    (make_tar_stub, "torch-tar", ["old tar format", "torch < 0.1.10", "re-save it"]),
    (make_truncated_zip, "zip", ["truncated or corrupt download", "delete it and pull again"]),
    (make_plain_zip, "zip", ["zip archive but not a torch.save file", "tf1-checkpoint"]),
    (make_empty, "empty", ["empty", "pull again"]),
    (make_random, "unknown", ["not a checkpoint format", "check the URL"]),
    (make_plain_pickle, "pickle", ["plain pickle", "haiku-pickle"]),
])
def test_wrong_containers_get_a_one_line_next_step(tmp_path: Path, make: Any, kind: str, words: list[str]) -> None:
    path = make(tmp_path / "download.pth.tar")
    assert sniff(path) == kind
    with pytest.raises(NotACheckpointError) as exc:
        read_checkpoint(path)
    message = one_line_error(exc, path)
    assert all(word in message for word in words), message
    assert "weights_only=False" not in message


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_legacy_file_is_reported_as_truncated(tmp_path: Path, keep: float) -> None:
    # 0.5 cuts inside the tensor bytes after the pickles; a tiny head cuts inside the pickles themselves
    path = save({"w": torch.randn(64, 64)}, tmp_path / "legacy.pth", legacy=True)
    data = path.read_bytes()
    for cut in (int(len(data) * keep), 40):
        path.write_bytes(data[:cut])
        assert sniff(path) == "torch-legacy"
        with pytest.raises(NotACheckpointError, match="truncated or corrupt download") as exc:
            read_checkpoint(path)
        one_line_error(exc, path)


def test_torchscript_archive_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(path))
    with pytest.raises(NotACheckpointError, match="TorchScript") as exc:
        read_checkpoint(path)
    one_line_error(exc, path)


def test_newer_pickle_protocol_is_refused_with_advice(tmp_path: Path) -> None:
    path = save(state_dict(), tmp_path / "p4.pth", pickle_protocol=4)
    with pytest.raises(NotACheckpointError, match="protocol 4") as exc:
        read_checkpoint(path)
    assert not isinstance(exc.value, UnsafePickleError)


def test_unknown_format_is_refused_and_every_reader_resolves(tmp_path: Path) -> None:
    with pytest.raises(NotACheckpointError, match="unknown checkpoint format 'keras'"):
        read_checkpoint(tmp_path / "x.h5", format="keras")
    assert all(callable(reader_for(name, "x")) for name in READERS)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "nope.pth")


# --- malicious pickles ------------------------------------------------------------------------------------


class Payload:
    """Pickles as a call to ``func(*args)``: what a booby-trapped checkpoint does."""

    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


class UserClass:
    """Any class of a training repo: refused, not stubbed."""


def payloads(marker: Path) -> dict[str, tuple[str, Any]]:
    """label → (the global the file names, an object that would create ``marker`` when unpickled)."""
    touch = f"touch {marker}"
    return {
        "os.system": (f"{os.system.__module__}.system", Payload(os.system, (touch,))),
        "eval": ("builtins.eval", Payload(eval, (f"__import__('os').system({touch!r})",))),
        "exec": ("builtins.exec", Payload(exec, (f"import os; os.system({touch!r})",))),
        "Popen": ("subprocess.Popen", Payload(subprocess.Popen, (["touch", str(marker)],))),
        "user class": (f"{__name__}.UserClass", UserClass()),
    }


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("label", ["os.system", "eval", "exec", "Popen", "user class"])
def test_malicious_pickle_is_refused_before_anything_runs(tmp_path: Path, legacy: bool, protocol: int,
                                                          label: str) -> None:
    marker = tmp_path / "pwned"
    global_name, payload = payloads(marker)[label]
    path = save({"state_dict": state_dict(), "x": payload}, tmp_path / "evil.pth", legacy, pickle_protocol=protocol)

    with pytest.raises(UnsafePickleError) as exc:
        read_checkpoint(path)
    message = one_line_error(exc, path)
    assert f"references {global_name}," in message and "could run code" in message
    assert not marker.exists()


# --- the restricted path: allow-listed globals as inert stand-ins ------------------------------------------


def fake_lightning_class(monkeypatch: pytest.MonkeyPatch) -> type:
    """A class that pickles as PL's ModelCheckpoint; its fake modules exist only while the caller saves."""
    cls = type("ModelCheckpoint", (), {"__module__": PL_CHECKPOINT.rsplit(".", 1)[0]})
    parts = PL_CHECKPOINT.split(".")
    for depth in range(1, len(parts)):
        module = types.ModuleType(".".join(parts[:depth]))
        monkeypatch.setitem(sys.modules, module.__name__, module)
    sys.modules[cls.__module__].ModelCheckpoint = cls  # type: ignore[attr-defined]
    return cls


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_lightning_checkpoint_loads_with_class_keyed_callbacks_as_stubs(tmp_path: Path, legacy: bool) -> None:
    sd = state_dict()
    with pytest.MonkeyPatch.context() as mp:
        cls = fake_lightning_class(mp)
        ckpt = {"epoch": 3, "state_dict": sd, "callbacks": {cls: {"best_model_score": torch.tensor(0.5)}},
                "hparams": argparse.Namespace(lr=0.1), "pytorch-lightning_version": "1.0.8"}
        path = save(ckpt, tmp_path / "mimic-chexpert.pt", legacy)
    assert "pytorch_lightning" not in sys.modules

    loaded = read_checkpoint(path)
    assert "pytorch_lightning" not in sys.modules
    assert_same(loaded["state_dict"], sd)
    assert loaded["epoch"] == 3 and loaded["pytorch-lightning_version"] == "1.0.8"
    (key, value), = loaded["callbacks"].items()
    assert key is stub_class(PL_CHECKPOINT) and issubclass(key, PickleStub) and key.__name__ == "ModelCheckpoint"
    assert key.stub_of == PL_CHECKPOINT and key.__module__.startswith("ssl_zoo.stubs.")
    assert torch.equal(value["best_model_score"], torch.tensor(0.5))
    assert loaded["hparams"].lr == 0.1


def test_namespace_becomes_a_stub_that_records_its_state(tmp_path: Path) -> None:
    args = argparse.Namespace(arch="resnet50", lr=0.03, dist_url="tcp://localhost:10001")
    loaded = read_checkpoint(save({"args": args, "state_dict": state_dict()}, tmp_path / "dino.pth"))["args"]
    assert isinstance(loaded, PickleStub) and not isinstance(loaded, argparse.Namespace)
    assert loaded.stub_of == "argparse.Namespace" and loaded.args == ()
    assert loaded.state == vars(args) and loaded.arch == "resnet50"
    with pytest.raises(AttributeError):
        loaded.missing  # noqa: B018
    assert copy.deepcopy(loaded).state == vars(args)
    with pytest.raises((pickle.PicklingError, AttributeError, ModuleNotFoundError, TypeError)):
        pickle.dumps(type(loaded))  # a stub can never be saved as if it were the real class


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_numpy_scalars_come_back_as_numpy_scalars(tmp_path: Path, legacy: bool) -> None:
    saved = {"best_acc1": np.float64(71.25), "step": np.int64(250), "flag": np.bool_(True), "half": np.float16(0.5)}
    loaded = read_checkpoint(save(saved, tmp_path / "best.pth.tar", legacy))
    for key, value in saved.items():
        assert type(loaded[key]) is type(value) and loaded[key] == value


def test_object_numpy_scalar_is_not_built(tmp_path: Path) -> None:
    scalar = np.float64(1.0).__reduce__()[0]  # numpy's own scalar constructor
    path = save({"x": Payload(scalar, (np.dtype("O"), 5))}, tmp_path / "obj.pth", legacy=True)
    with pytest.raises(NotACheckpointError, match="cannot be read safely") as exc:
        read_checkpoint(path)
    one_line_error(exc, path)


def test_defaultdict_loads_as_a_plain_dict(tmp_path: Path) -> None:
    saved = collections.defaultdict(list, {"loss": [torch.tensor(1.0)]})
    loaded = read_checkpoint(save({"log": saved}, tmp_path / "log.pth"))["log"]
    assert type(loaded) is dict and torch.equal(loaded["loss"][0], torch.tensor(1.0))


def test_allow_list_stays_explained_and_small() -> None:
    patterns = [pattern for rule in ALLOW_LIST for pattern in rule.patterns]
    assert all(rule.why for rule in ALLOW_LIST) and len(patterns) == len(set(patterns))
    assert not any(p.startswith(("os.", "posix.", "subprocess.", "sys.")) or p == "builtins.*" for p in patterns)


def test_several_refused_globals_are_counted_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = {label: payload for label, (_, payload) in payloads(marker).items()}
    with pytest.raises(UnsafePickleError, match=r"references builtins\.eval \(and 4 more\),") as exc:
        read_checkpoint(save(evil, tmp_path / "evil.pth"))
    one_line_error(exc, tmp_path / "evil.pth")
    assert not marker.exists()


def test_concurrent_restricted_loads_do_not_unregister_each_others_stand_ins(tmp_path: Path) -> None:
    path = save({"args": argparse.Namespace(lr=0.1), "best": np.float64(1.5), "w": torch.ones(2)}, tmp_path / "a.pth")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: read_checkpoint(path), range(32)))
    assert all(r["args"].lr == 0.1 and r["best"] == 1.5 for r in results)
    assert not any(isinstance(g, tuple) for g in torch.serialization.get_safe_globals())  # all removed again
