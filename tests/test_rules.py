"""The conversion rules and validation, as pure functions on hand-made state dicts."""

from __future__ import annotations

import pytest
import torch

from ssl_zoo import errors
from ssl_zoo.converters.convert import convert_state_dict
from ssl_zoo.converters.families import get_family
from ssl_zoo.converters.families.supervised import DENSENET_LEGACY
from ssl_zoo.converters.rules import DropPrefixes, KeepPrefix, RenameRegex, Report, Unwrap, apply_rules
from ssl_zoo.registry import get_entry

T = torch.zeros(1)


def test_keep_prefix_strips_only_leading_prefixes() -> None:
    tensors = {"module.encoder_q.conv1.weight": T, "x.module.encoder_q.bn1.weight": T, "module.queue": T}
    kept = KeepPrefix("module.encoder_q.").apply(tensors, "fc", Report())
    assert list(kept) == ["conv1.weight"]


def test_keep_prefix_explains_a_wrong_file() -> None:
    with pytest.raises(errors.ConversionError, match="module.base_encoder"):
        KeepPrefix("module.base_encoder.").apply({"conv1.weight": T}, "fc", Report())


def test_keep_prefix_if_present_passes_other_layouts() -> None:
    assert KeepPrefix("sparse_encoder.sp_cnn.", if_present=True).apply({"conv1.weight": T}, "fc", Report()) == {"conv1.weight": T}


def test_drop_prefixes_is_exact() -> None:
    tensors = {"fc.weight": T, "fc_extra.weight": T, "layer1.0.fc.weight": T}
    assert set(DropPrefixes(("fc.",)).apply(tensors, "fc", Report())) == {"fc_extra.weight", "layer1.0.fc.weight"}


def test_unwrap_is_tolerant() -> None:
    report = Report()
    assert Unwrap(("state_dict",)).unwrap({"state_dict": {"a": T}}, report) == {"a": T}
    assert Unwrap(("state_dict",)).unwrap({"a": T}, report) == {"a": T}


@pytest.mark.parametrize(("old", "new"), [
    ("features.denseblock1.denselayer1.norm.1.weight", "features.denseblock1.denselayer1.norm1.weight"),
    ("features.denseblock4.denselayer16.conv.2.weight", "features.denseblock4.denselayer16.conv2.weight"),
    ("features.transition1.norm.weight", "features.transition1.norm.weight"),
    ("features.denseblock1.denselayer1.norm1.weight", "features.denseblock1.denselayer1.norm1.weight"),
])
def test_densenet_legacy_rename(old: str, new: str) -> None:
    assert list(RenameRegex(DENSENET_LEGACY, r"\1\2").apply({old: T}, "classifier", Report())) == [new]


def test_non_tensor_values_are_skipped_and_reported() -> None:
    tensors, report = apply_rules({"module": {"a.w": T, "config": {"mask_ratio": 0.6}}}, (Unwrap(("module",)),), "fc")
    assert tensors == {"a.w": T} and report.ignored_values == ["config"]


def test_a_wrapper_the_family_does_not_expect_is_named() -> None:
    with pytest.raises(errors.ConversionError, match="no tensors.*'state_dict'"):
        apply_rules({"state_dict": {"a": T}, "epoch": 3}, (), "fc")


def _trunk(arch: str = "resnet50") -> dict[str, torch.Tensor]:
    import timm

    return timm.create_model(arch, num_classes=0).state_dict()


def test_validation_names_missing_unexpected_and_shape() -> None:
    trunk = _trunk()
    del trunk["layer1.0.conv1.weight"]
    trunk["encoder_k.conv1.weight"] = T
    trunk["conv1.weight"] = torch.zeros(64, 1, 7, 7)
    with pytest.raises(errors.ConversionError) as info:
        convert_state_dict(trunk, get_entry("barlow-twins"))
    message = str(info.value)
    assert "1 missing (e.g. layer1.0.conv1.weight)" in message
    assert "1 unexpected (e.g. encoder_k.conv1.weight)" in message and "1 wrong shape (e.g. conv1.weight)" in message


def test_non_finite_weights_are_refused() -> None:
    trunk = _trunk()
    trunk["conv1.weight"] = trunk["conv1.weight"].clone().fill_(float("nan"))
    with pytest.raises(errors.ConversionError, match="non-finite"):
        convert_state_dict(trunk, get_entry("barlow-twins"))


def test_missing_batch_counters_are_filled() -> None:
    trunk = {k: v for k, v in _trunk().items() if not k.endswith("num_batches_tracked")}
    tensors, report = convert_state_dict(trunk, get_entry("barlow-twins"))
    assert tensors["bn1.num_batches_tracked"].dtype == torch.int64 and "53 num_batches_tracked" in report.steps[-1]


def test_every_family_describes_its_rules() -> None:
    assert get_family("moco").describe() == [
        "take the first of ['state_dict'] when present", "keep keys under 'module.encoder_q.' and strip it",
        "drop the classifier head"]
