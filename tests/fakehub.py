"""A loopback stand-in for the Hugging Face Hub's download API, and a recorder of the publishing calls.

Download side (what ``hf_hub_download`` and timm's ``hf-hub:`` use): ``HEAD``/``GET``
``/{org}/{name}/resolve/{revision}/{file}`` answer the file with ``X-Repo-Commit`` (40 hex), ``ETag`` (the sha256
for ``*.safetensors`` as for an LFS file, the git blob sha1 otherwise) and ``Content-Length``; unknown repos,
revisions and files answer 404 with the Hub's ``X-Error-Code``. A revision is a branch name or a commit id.

Publishing side: ``RecordingHfApi`` replaces ``huggingface_hub.HfApi``; it records every call and commits an
uploaded folder into the ``FakeHub``, so a publish can be downloaded back over HTTP::

    with FakeHub() as hub:
        commit = hub.add_folder("org/resnet50.moco-v2", folder)
        # HF_ENDPOINT=hub.url → ssl_zoo.load("hf-hub:org/resnet50.moco-v2") downloads it
        hub.tamper("org/resnet50.moco-v2", "model.safetensors", offset=1000)
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

from .loopback import ServedOnLoopback  # the same quiet, threaded loopback server as the mirror's

LFS_SUFFIXES = (".safetensors",)


def _etag(name: str, data: bytes) -> str:
    if name.endswith(LFS_SUFFIXES):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id, as the Hub sends


@dataclass
class _Repo:
    refs: dict[str, str] = field(default_factory=dict)  # branch -> commit
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> {file: bytes}
    etags: dict[tuple[str, str], str] = field(default_factory=dict)  # (commit, file) -> etag at commit time


@dataclass
class _State:
    repos: dict[str, _Repo] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    state: _State

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet; the log is ``FakeHub.requests``."""

    def _answer(self, send_body: bool) -> None:
        path = unquote(urlsplit(self.path).path).lstrip("/")
        with self.state.lock:
            self.state.requests.append((self.command, path))
        parts = path.split("/", 4)
        if len(parts) != 5 or parts[2] != "resolve":
            return self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, send_body)
        repo_id, revision, name = f"{parts[0]}/{parts[1]}", parts[3], parts[4]
        repo = self.state.repos.get(repo_id)
        if repo is None:
            return self._send(404, b"", {"X-Error-Code": "RepoNotFound"}, send_body)
        commit = repo.refs.get(revision, revision)
        if commit not in repo.commits:
            return self._send(404, b"", {"X-Error-Code": "RevisionNotFound"}, send_body)
        data = repo.commits[commit].get(name)
        if data is None:
            return self._send(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, send_body)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{repo.etags[(commit, name)]}"',
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        self._send(200, data, headers, send_body)

    def _send(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True


class FakeHub(ServedOnLoopback):
    """Serve repositories added with ``add_folder`` on 127.0.0.1 until ``close()``."""

    def __init__(self) -> None:
        self._state = _State()
        super().__init__(type("Handler", (_Handler,), {"state": self._state}))

    def add_folder(self, repo_id: str, folder: Path, revision: str = "main",
                   allow_patterns: list[str] | None = None) -> str:
        """Commit the files of ``folder`` (or only ``allow_patterns``) to ``revision``; returns the commit id."""
        names = allow_patterns or [p.name for p in sorted(Path(folder).iterdir()) if p.is_file()]
        files = {name: (Path(folder) / name).read_bytes() for name in names}
        commit = hashlib.sha1(repr(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items())).encode()
                              + repo_id.encode() + revision.encode()).hexdigest()
        with self._state.lock:
            repo = self._state.repos.setdefault(repo_id, _Repo())
            repo.commits[commit] = files
            repo.etags.update({(commit, k): _etag(k, v) for k, v in files.items()})
            repo.refs[revision] = commit
        return commit

    def commit_of(self, repo_id: str, revision: str = "main") -> str:
        """The commit ``revision`` of ``repo_id`` points to."""
        return self._state.repos[repo_id].refs[revision]

    def served(self, repo_id: str, name: str, revision: str = "main") -> bytes:
        """The bytes served now for ``name`` at ``revision``."""
        repo = self._state.repos[repo_id]
        return repo.commits[repo.refs.get(revision, revision)][name]

    def forge(self, repo_id: str, name: str, data: bytes, revision: str = "main") -> None:
        """Serve ``data`` for a committed file; its ETag stays the one computed when it was committed."""
        repo = self._state.repos[repo_id]
        repo.commits[repo.refs.get(revision, revision)][name] = data

    def tamper(self, repo_id: str, name: str, offset: int, revision: str = "main") -> bytes:
        """Flip one byte of a served file (ETag unchanged); returns the bytes now served."""
        data = bytearray(self.served(repo_id, name, revision))
        data[offset] ^= 0xFF
        self.forge(repo_id, name, bytes(data), revision)
        return bytes(data)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request so far."""
        with self._state.lock:
            return list(self._state.requests)


@dataclass
class RecordingHfApi:
    """Stands in for ``huggingface_hub.HfApi``: records calls and commits uploads into ``hub`` (if given).

    Install it with ``monkeypatch.setattr(huggingface_hub, "HfApi", RecordingHfApi(hub))``.
    """

    hub: FakeHub | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    uploaded: list[dict[str, bytes]] = field(default_factory=list)

    def __call__(self, **kwargs: Any) -> RecordingHfApi:
        """``HfApi(...)``: record the constructor arguments and hand back this recorder."""
        self.calls.append(("HfApi", kwargs))
        return self

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://fake/{repo_id}"

    def upload_folder(self, *, repo_id: str, folder_path: str, **kwargs: Any) -> SimpleNamespace:
        self.calls.append(("upload_folder", {"repo_id": repo_id, "folder_path": folder_path, **kwargs}))
        folder = Path(folder_path)
        patterns = kwargs.get("allow_patterns")
        names = patterns or [p.name for p in folder.iterdir() if p.is_file()]
        self.uploaded.append({name: (folder / name).read_bytes() for name in names})
        if self.hub is not None:
            commit = self.hub.add_folder(repo_id, folder, kwargs.get("revision") or "main", patterns)
        else:
            commit = "0" * 40
        pr_url = f"https://fake/{repo_id}/discussions/1" if kwargs.get("create_pr") else None
        return SimpleNamespace(oid=commit, commit_url=f"https://fake/{repo_id}/commit/{commit}", pr_url=pr_url)


def make_model_folder(out_dir: Path, name: str = "supervised-r18") -> Path:
    """A real model folder of registry entry ``name``, converted from its fixture: ``<out_dir>/<name>``."""
    from ssl_zoo.converters.convert import convert_checkpoint
    from ssl_zoo.store.hashes import sha256_file
    from ssl_zoo.registry import get_entry

    from .fixtures import build

    fixture = build(name, Path(out_dir) / "upstream")
    return convert_checkpoint(get_entry(name), fixture.path, sha256_file(fixture.path), Path(out_dir) / name)
