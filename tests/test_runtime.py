"""``Speed`` never leaves the caller's process-wide numerics flags changed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssl_zoo.evaluation.probe import linear_probe
from ssl_zoo.runtime import Speed

from .test_eval_support import learnable_samples, r18_folder  # noqa: F401  (fixture)


def flags() -> tuple[bool, bool, bool]:
    return (torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


@pytest.fixture
def caller_flags() -> Iterator[tuple[bool, bool, bool]]:
    """The caller's own choice (all off), restored after the test whatever it did."""
    saved = flags()
    torch.backends.cudnn.benchmark = torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield flags()
    torch.backends.cudnn.benchmark, torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fast_settings_change_no_flag(caller_flags: tuple) -> None:
    Speed.fast("cuda")  # building the settings needs no GPU
    assert flags() == caller_flags


def test_numerics_are_scoped_and_restored_on_error(caller_flags: tuple) -> None:
    speed = Speed.fast("cuda")
    with pytest.raises(RuntimeError, match="inside"):
        with speed.numerics():
            assert flags() == (True, True, True)
            raise RuntimeError("inside")
    assert flags() == caller_flags
    with speed.plain().numerics():
        assert flags() == caller_flags  # the baseline runs with the caller's numerics


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="on CPU numerics() never touches the flags, so only a CUDA run can show a leak")
def test_linear_probe_leaves_the_flags_as_they_were(r18_folder: Path, caller_flags: tuple) -> None:  # noqa: F811
    linear_probe(r18_folder, learnable_samples(30), image_size=16, C=1.0, progress=False)
    assert flags() == caller_flags
