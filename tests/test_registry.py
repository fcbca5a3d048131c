"""The catalogue: every entry validates, the schema rejects what it does not know, queries filter."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ssl_zoo import errors
from ssl_zoo.architectures import ARCHS
from ssl_zoo.converters.families import all_families
from ssl_zoo.registry import all_entries, get_entry, list_models
from ssl_zoo.registry.schema import parse_entry

CORE_NAMES = {
    "supervised-r50", "supervised-r18", "supervised-d121", "barlow-twins", "swav", "deepcluster-v2", "sela-v2",
    "insdis", "moco-v1", "moco-v2", "moco-v3", "pcl-v1", "pcl-v2", "infomin", "pirl", "spark",
}


def test_core_names_are_registered() -> None:
    assert CORE_NAMES <= set(list_models())


@pytest.mark.parametrize("name", sorted(CORE_NAMES))
def test_entry_is_complete(name: str) -> None:
    entry = get_entry(name)
    assert entry.arch in ARCHS and entry.family in all_families()
    assert entry.paper and entry.paper_url.startswith("https://") and entry.license and entry.pretraining_data
    assert entry.checkpoint.url.startswith("https://") and entry.checkpoint.filename
    assert entry.preprocessing.input_size == (3, 224, 224)
    assert entry.non_commercial == entry.license.startswith("CC-BY-NC")


def test_torchvision_files_pin_their_hash_prefix() -> None:
    catalog = all_entries.__wrapped__()  # as written, without the test suite's unpinning
    for name in ("supervised-r50", "supervised-r18", "supervised-d121"):
        source = catalog[name].checkpoint
        assert source.sha256_prefix and f"-{source.sha256_prefix}." in source.filename


def test_swav_family_keeps_its_own_std() -> None:
    assert get_entry("swav").preprocessing.std == (0.228, 0.224, 0.225)
    assert get_entry("moco-v2").preprocessing.std == (0.229, 0.224, 0.225)


PRESETS = {"imagenet": get_entry("moco-v2").preprocessing}
MINIMAL = {"arch": "resnet50", "method": "M", "family": "moco", "paper": "P", "license": "MIT",
           "pretraining_data": "D", "preprocessing": "imagenet",
           "sources": [{"url": "https://example.org/a.pth", "filename": "a.pth"}]}


def test_schema_accepts_a_minimal_table() -> None:
    assert parse_entry("my-model", MINIMAL, PRESETS).checkpoint.filename == "a.pth"


@pytest.mark.parametrize("bad", [
    {**MINIMAL, "licence": "MIT"},                                                  # unknown key (typo)
    {**MINIMAL, "sources": [{"url": "https://x/a", "filename": "a", "sha": "1"}]},  # unknown source key
    {**MINIMAL, "sources": [{"url": "https://x/a", "filename": "../a"}]},           # path in file name
    {**MINIMAL, "sources": [{"url": "https://x/a", "filename": "a", "sha256": "xyz"}]},
    {**MINIMAL, "preprocessing": "nope"},
    {**MINIMAL, "preprocessing": {"mean": [0.5]}},                                  # mean without std
    {**MINIMAL, "status": "user-supplied"},                                         # no how_to_get
    {**MINIMAL, "format": "onnx"},
    {k: v for k, v in MINIMAL.items() if k != "license"},                           # missing field
])
def test_schema_rejects(bad: dict) -> None:
    with pytest.raises(errors.RegistryError):
        parse_entry("my-model", bad, PRESETS)


def test_schema_holds_later_entries() -> None:
    multi = {**MINIMAL, "format": "tf1-checkpoint", "sources": [
        {"url": f"https://x/{f}", "filename": f} for f in ("checkpoint", "model.ckpt-1.index", "model.ckpt-1.data-00000-of-00001")]}
    assert len(parse_entry("simclr-like", multi, PRESETS).sources) == 3
    manual = {**MINIMAL, "status": "user-supplied", "how_to_get": "ask the authors",
              "sources": [{"url": "", "filename": "unet.pth"}]}
    assert parse_entry("dira-like", manual, PRESETS).status == "user-supplied"


def test_list_models_filters() -> None:
    assert list_models("moco-v*") == ["moco-v1", "moco-v2", "moco-v3"]
    assert list_models(arch="densenet121") == ["mimic-chexpert-lr-0.01", "mimic-chexpert-lr-0.1",
                                               "mimic-chexpert-lr-1.0", "moco-cxr-d121", "supervised-d121"]
    assert "swav" not in list_models(commercial_use=True)
    assert set(list_models(family="swav")) == {"swav", "deepcluster-v2", "sela-v2"}


def test_unknown_name() -> None:
    with pytest.raises(errors.UnknownModelError, match="did you mean swav"):
        get_entry("swa")


def test_catalog_has_no_duplicate_filenames_per_entry() -> None:
    for entry in all_entries().values():
        names = [s.filename for s in entry.sources]
        assert len(names) == len(set(names))


def test_import_and_listing_do_not_import_frameworks() -> None:
    code = ("import sys, time; t = time.perf_counter(); import ssl_zoo; ssl_zoo.list_models(); "
            "ssl_zoo.get_entry('moco-v2'); print(time.perf_counter() - t); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert float(out[0]) < 1.0
    assert out[1] == "[]"
