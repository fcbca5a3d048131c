"""Publish model folders to the Hugging Face Hub, as they are, so timm and ssl_zoo can load them back.

Repository names follow timm's ``<architecture>.<pretrained tag>`` form with the ssl_zoo name as the tag:
``<namespace>/<arch>.<name>``, e.g. ``ssl-zoo/resnet50.moco-v2`` — the name says which network it builds and
which checkpoint it holds. A registry entry whose ``hf_repo`` names a repository keeps that repository's name
(under the namespace given). A user's own folder (from fine-tuning or pre-training) goes the same way, named by
its ``config.json``.

Each entry is one commit: ``create_repo(exist_ok=True)`` then one ``upload_folder`` of exactly the files listed
in the plan (the folder is verified first), with a commit message naming the ssl_zoo version and the upstream
file's sha256. The card's ``hf-hub:`` lines are rewritten to the repository's id in a staged copy; the cached
folder is never modified.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .. import __version__
from ..modelfolder.card import with_repo_id
from ..store import cache
from ..errors import PublishError, one_line
from ..modelfolder.files import CARD, WEIGHTS, folder_files, read_config, verify_folder
from ..store.hashes import sha256_file
from .hub import REPO_RE, endpoint
from ..extras import extra_imports
from ..progress import shown
from ..registry import all_entries
from ..resolve import resolve_folder


@dataclass(frozen=True)
class PlannedFile:
    """One file of an upload: its name in the repository, size and sha256 (as uploaded)."""

    name: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PublishPlan:
    """What one ``upload_folder`` call sends, and where (also what ``dry_run`` reports).

    Attributes:
        repo_id: ``<namespace>/<arch>.<name>``.
        folder: The model folder published.
        files: Every file uploaded, after the card's ``hf-hub:`` lines are rewritten.
        commit_message: Names the ssl_zoo version and the upstream sha256.
        private, create_pr, revision: As given to ``publish``.
        commit_url: The commit (or pull request) created; empty for a dry run.
    """

    repo_id: str
    folder: Path
    files: tuple[PlannedFile, ...]
    commit_message: str
    private: bool
    create_pr: bool
    revision: str | None
    commit_url: str = ""


def repo_name(arch: str, name: str) -> str:
    """The repository name of a model folder: ``<arch>.<name>`` (timm's ``architecture.tag`` form)."""
    return f"{arch}.{name}".lower()


def repo_id_for(config: dict, folder: Path, namespace: str) -> str:
    """``<namespace>/<repo name>`` for a model folder: its entry's ``hf_repo`` name, else ``<arch>.<name>``.

    Raises:
        PublishError: If the namespace or the resulting id is not a valid Hub repository id.
    """
    name = str(config.get("ssl_zoo", {}).get("name") or folder.name)
    entry = all_entries().get(name)
    if entry is not None and entry.hf_repo:
        base = entry.hf_repo.partition("@")[0].split("/", 1)[-1]
    else:
        base = repo_name(str(config.get("architecture", "model")), name)
    repo_id = f"{namespace}/{base}"
    if not REPO_RE.match(repo_id):
        raise PublishError(f"{repo_id!r} is not a valid Hub repository id: use a namespace of letters, digits, "
                           "'-', '_' and '.' (your user or organisation name)")
    return repo_id


def commit_message(config: dict) -> str:
    """The commit message: what was published, by which ssl_zoo, from which upstream file."""
    zoo = config.get("ssl_zoo", {})
    source = zoo.get("source_sha256") or "none (trained, not converted)"
    return f"Upload {zoo.get('name', 'model folder')} with ssl_zoo {__version__} (source sha256 {source})"


@contextmanager
def _staged(folder: Path, repo_id: str) -> Iterator[Path]:
    """A copy of ``folder`` whose card points at ``repo_id``; weights are hard links where the disk allows."""
    with tempfile.TemporaryDirectory(prefix="ssl_zoo-publish-") as tmp:
        stage = Path(tmp) / folder.name
        stage.mkdir()
        for path in folder_files(folder):
            if path.name == CARD:
                (stage / CARD).write_text(with_repo_id(path.read_text(), repo_id))
                continue
            try:
                os.link(path, stage / path.name)
            except OSError:  # another file system, or no hard links: copy
                shutil.copy2(path, stage / path.name)
        yield stage


def _plan(folder: Path, stage: Path, repo_id: str, config: dict, weights_sha256: str,
          **options: object) -> PublishPlan:
    """The upload of ``stage``; the weights' digest is the one ``verify_folder`` just computed (not hashed twice)."""
    files = tuple(PlannedFile(p.name, p.stat().st_size, weights_sha256 if p.name == WEIGHTS else sha256_file(p))
                  for p in sorted(stage.iterdir()))
    return PublishPlan(repo_id, folder, files, commit_message(config), **options)  # type: ignore[arg-type]


def publish(
    names_or_folders: Iterable[str | Path] | str | Path,
    *,
    namespace: str,
    private: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> list[PublishPlan]:
    """Upload model folders to the Hugging Face Hub, one repository and one commit each.

    Args:
        names_or_folders: Registry names (converted first if needed), ``local-dir:`` paths or folder paths
            (e.g. your own fine-tuned or pre-trained model folders).
        namespace: Your Hub user or organisation.
        private: Create new repositories as private.
        create_pr: Open a pull request against the default branch instead of committing to it.
        revision: The branch to commit to (default: the default branch); not with ``create_pr``.
        dry_run: Only verify and report what would be uploaded; nothing is sent.
        progress: Show progress on stderr.

    Returns:
        One plan per folder, with ``commit_url`` filled in when it was uploaded.

    Raises:
        PublishError: On conflicting options, an invalid name, or an upload the Hub refused.
        ModelFolderError: If a folder is incomplete or its weights do not match their recorded sha256.

    Example:
        >>> publish(["moco-v2"], namespace="my-lab", dry_run=True)[0].repo_id
        'my-lab/resnet50.moco-v2'
    """
    if create_pr and revision:
        raise PublishError("--create-pr opens a pull request against the default branch: drop --revision, "
                           "or use --revision alone to commit to that branch")
    if cache.is_offline() and not dry_run:
        raise PublishError("offline mode is on (SSL_ZOO_OFFLINE or HF_HUB_OFFLINE): publishing needs the network; "
                           "unset it, or check what would be sent with --dry-run")
    items = [names_or_folders] if isinstance(names_or_folders, (str, Path)) else list(names_or_folders)
    options = {"private": private, "create_pr": create_pr, "revision": revision}
    folders = [resolve_folder(item, progress=progress) for item in items]
    with _progress_bars(progress):
        return [_publish_one(folder, namespace, dry_run, options) for folder in folders]


@contextmanager
def _progress_bars(progress: bool) -> Iterator[None]:
    """huggingface_hub's upload bars off unless progress is wanted (they are a global switch: restored after)."""
    with extra_imports():
        from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    if not shown(progress):
        disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def _publish_one(folder: Path, namespace: str, dry_run: bool, options: dict) -> PublishPlan:
    weights_sha256 = verify_folder(folder)  # never publish weights that do not match their own record
    config = read_config(folder)
    repo_id = repo_id_for(config, folder, namespace)
    with _staged(folder, repo_id) as stage:
        plan = _plan(folder, stage, repo_id, config, weights_sha256, **options)
        if dry_run:
            return plan
        return _upload(plan, stage)


def _failure(plan: PublishPlan, exc: BaseException) -> PublishError:
    """One line that blames what failed: the token only when the Hub answered 401/403."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    head = f"publishing {plan.folder} to {plan.repo_id} failed ({one_line(exc)})"
    if status in (401, 403):
        return PublishError(f"{head}: check that HF_TOKEN (or `hf auth login`) can write to that namespace")
    if status is None:
        return PublishError(f"{head}: the Hub at {endpoint()} could not be reached; check the connection")
    return PublishError(f"{head}: the Hub answered HTTP {status}; run it again later")


def _upload(plan: PublishPlan, stage: Path) -> PublishPlan:
    with extra_imports():
        import huggingface_hub
        from huggingface_hub.utils import httpx

    api = huggingface_hub.HfApi(library_name="ssl_zoo", library_version=__version__)
    try:
        api.create_repo(plan.repo_id, private=plan.private, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=plan.repo_id, folder_path=str(stage), repo_type="model",
                                 commit_message=plan.commit_message, revision=plan.revision,
                                 create_pr=plan.create_pr, allow_patterns=[f.name for f in plan.files])
    except (OSError, httpx.HTTPError) as exc:
        raise _failure(plan, exc) from None
    return dataclasses.replace(plan, commit_url=str(info.pr_url or info.commit_url))
