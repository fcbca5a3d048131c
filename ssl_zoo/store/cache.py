"""Where things live under ``SSL_ZOO_HOME``; nothing else.

```
$SSL_ZOO_HOME/                      default: the user cache dir (platformdirs), e.g. ~/.cache/ssl_zoo
├── downloads/<name>/<file>         upstream files exactly as published (verified by sha256)
│             <file>.partial        an unfinished download, resumed by the next attempt
├── downloads/.<name>.staging-<id>/ a user's file being converted (kept only if it converts)
├── models/.<name>.tmp-<id>/        a conversion in progress (stale after a kill: see stale_temporaries)
├── models/.bundle-<id>/            a bundle being installed (stale after a kill: see bundle_stagings)
├── models/<name>/                  the converted model folder (the contract: ARCHITECTURE.md)
│   ├── model.safetensors
│   ├── config.json
│   └── README.md
├── hub/<org>--<repo>/<commit>/     a model folder fetched with `hf-hub:ORG/REPO[@REV]`, verified
│   └── refs/<revision>             the commit a branch last resolved to (used offline)
├── locks/<name>.lock               one process pulls an entry at a time
├── locks/.bundle-<id>.lock         held while a bundle is installed into models/.bundle-<id>/
└── hashes.lock.json                sha256 first observed for every unpinned upstream file
```
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SSL_ZOO_HOME"
MIRROR_ENV = "SSL_ZOO_MIRROR"
OFFLINE_ENVS = ("SSL_ZOO_OFFLINE", "HF_HUB_OFFLINE")
QUIET_ENV = "SSL_ZOO_QUIET"
DEBUG_ENV = "SSL_ZOO_DEBUG"
VERIFY_ENV = "SSL_ZOO_VERIFY"  # 1: every load re-hashes model.safetensors against config.json
SOURCE_ENV = "SSL_ZOO_SOURCE"  # upstream | hub | auto: where a registry entry's model folder comes from

_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to a true value (1/true/yes/on)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def home() -> Path:
    """The cache root: ``$SSL_ZOO_HOME`` or the platform's user cache dir."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("ssl_zoo", appauthor=False))


def is_offline() -> bool:
    """True when ``SSL_ZOO_OFFLINE`` or ``HF_HUB_OFFLINE`` asks never to touch the network."""
    return any(env_flag(name) for name in OFFLINE_ENVS)


def mirror_base() -> str | None:
    """The ``SSL_ZOO_MIRROR`` base URL without a trailing slash, or None; a plain folder path becomes ``file://``."""
    base = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if base and "://" not in base:
        return Path(base).expanduser().resolve().as_uri()
    return base or None


def downloads_dir(name: str) -> Path:
    """Folder of the upstream files of entry ``name``."""
    return home() / "downloads" / name


def download_path(name: str, filename: str) -> Path:
    """Path of one upstream file of entry ``name``."""
    return downloads_dir(name) / filename


def model_dir(name: str) -> Path:
    """The converted model folder of entry ``name``."""
    return home() / "models" / name


def hub_dir(repo_id: str) -> Path:
    """Folder of the verified model folders fetched from Hub repository ``repo_id`` (one per commit)."""
    return home() / "hub" / repo_id.replace("/", "--")


def entry_lock_path(name: str) -> Path:
    """The inter-process lock held while entry ``name`` is pulled or converted."""
    return home() / "locks" / f"{name}.lock"


def hash_lock_path() -> Path:
    """The JSON file of sha256s first observed for unpinned upstream files."""
    return home() / "hashes.lock.json"


def staging_dir(name: str, token: str) -> Path:
    """A private folder where a user's files for entry ``name`` wait while they are converted."""
    return home() / "downloads" / f".{name}.staging-{token}"


# What an interrupted pull, conversion or swap of entry NAME leaves behind (modelfolder.files and
# store.sources name their temporaries so); partial downloads are not listed: they are resumed.
_TEMPORARIES = ("models/.{name}.tmp-*", "models/.{name}.old-*", "downloads/.{name}.staging-*")


def stale_temporaries(name: str) -> list[Path]:
    """Temporary folders of entry ``name`` under the cache; stale unless a process holds the entry's lock.

    Example:
        >>> stale_temporaries("moco-v2")  # doctest: +SKIP
        [PosixPath('/home/me/.cache/ssl_zoo/models/.moco-v2.tmp-1a2b3c4d')]
    """
    root = home()
    return sorted(p for pattern in _TEMPORARIES for p in root.glob(pattern.format(name=name)))


def bundle_staging(token: str) -> Path:
    """The hidden folder beside the models where one bundle install verifies its files before moving them in."""
    return home() / "models" / f".bundle-{token}"


def bundle_stagings() -> list[Path]:
    """Every bundle staging folder under the cache; stale unless a process holds its ``bundle_lock_path``."""
    return sorted(home().glob("models/.bundle-*"))


def bundle_lock_path(staging: Path) -> Path:
    """The inter-process lock held while a bundle is installed through ``staging`` (no entry name starts with '.')."""
    return home() / "locks" / f"{staging.name}.lock"
