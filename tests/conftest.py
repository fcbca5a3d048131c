"""Offline test setup: a private SSL_ZOO_HOME per test and a loopback mirror of format-faithful fixtures.

The fixtures of every registry entry are built once per session and served by one loopback server
(127.0.0.1 only) in the mirror layout ``<base>/<name>/<file>``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ssl_zoo.registry import all_entries, list_models

from .fixtures import Fixture, build
from .loopback import LoopbackServer

ALL_NAMES = list_models()


@pytest.fixture(autouse=True)
def ssl_zoo_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty cache and no mirror, offline or progress settings from the environment."""
    home = tmp_path / "ssl_zoo_home"
    monkeypatch.setenv("SSL_ZOO_HOME", str(home))
    monkeypatch.setenv("SSL_ZOO_QUIET", "1")
    for name in ("SSL_ZOO_MIRROR", "SSL_ZOO_OFFLINE", "HF_HUB_OFFLINE", "SSL_ZOO_DEBUG", "SSL_ZOO_VERIFY",
                 "SSL_ZOO_MIN_RATE", "SSL_ZOO_RATE_WINDOW", "SSL_ZOO_STALL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def unpinned_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixtures are not the real files, so the sha256 prefixes torchvision publishes cannot match them.

    Tests that check pin enforcement pin the fixture's own digest with ``pin``.
    """
    entries = all_entries()
    for name, entry in list(entries.items()):
        if any(s.pinned for s in entry.sources):
            sources = tuple(dataclasses.replace(s, sha256=None, sha256_prefix=None) for s in entry.sources)
            monkeypatch.setitem(entries, name, dataclasses.replace(entry, sources=sources))


def pin(monkeypatch: pytest.MonkeyPatch, name: str, **fields: str) -> None:
    """Set sha256 / sha256_prefix on the checkpoint source of entry ``name`` for one test."""
    entries = all_entries()
    entry = entries[name]
    source = dataclasses.replace(entry.checkpoint, **fields)
    monkeypatch.setitem(entries, name, dataclasses.replace(entry, sources=(source, *entry.sources[1:])))


@pytest.fixture(scope="session")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Fixture]:
    """The default-variant fixture of every registry entry, written once under one mirror root."""
    root = tmp_path_factory.mktemp("mirror")
    return {name: build(name, root) for name in ALL_NAMES}


@pytest.fixture(scope="session")
def mirror_server(fixtures: dict[str, Fixture]) -> LoopbackServer:
    root = next(iter(fixtures.values())).path.parent.parent
    server = LoopbackServer(root)
    yield server
    server.close()


@pytest.fixture
def mirror(mirror_server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> LoopbackServer:
    """The loopback mirror, set as SSL_ZOO_MIRROR, with no faults and an empty request log."""
    mirror_server.reset()
    monkeypatch.setenv("SSL_ZOO_MIRROR", mirror_server.url)
    yield mirror_server
    mirror_server.reset()


def mirror_path(fixture: Fixture) -> str:
    """The path of a fixture on the mirror server: ``<name>/<file>``."""
    return f"{fixture.name}/{fixture.path.name}"
