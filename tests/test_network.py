"""Real downloads from upstream, opt-in: `python -m pytest -m network` (never run in CI here: no internet)."""

from __future__ import annotations

import pytest
import torch

import ssl_zoo
from ssl_zoo.registry import all_entries

pytestmark = pytest.mark.network


@pytest.mark.parametrize("name", ["supervised-r18", "moco-v2"])
def test_real_pull_converts_and_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the test suite unpins the registry for its fixtures; real files must meet the real pins
    monkeypatch.setitem(all_entries(), name, all_entries.__wrapped__()[name])
    model = ssl_zoo.load(name)
    with torch.no_grad():
        features = model(torch.randn(1, 3, 224, 224))
    assert features.shape[0] == 1 and torch.isfinite(features).all()
