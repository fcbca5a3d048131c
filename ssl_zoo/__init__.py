"""ssl_zoo: the self-supervised and supervised checkpoints of medical-imaging research, in one line.

>>> import ssl_zoo
>>> model = ssl_zoo.load("moco-v2")             # torch.nn.Module, eval mode, pooled features (N, 2048)
>>> ssl_zoo.list_models("moco*")

Importing this package does not import torch: the functions that need it load their modules on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved lazily so `import ssl_zoo` and `ssl-zoo list` stay fast.
# No module shares a name with a function here: importing `ssl_zoo.load` would shadow `ssl_zoo.load()`.
_LAZY = {
    "list_models": "registry",
    "get_entry": "registry",
    "load": "loading",
    "load_state_dict": "loading",
    "pull": "pulling",
    "pull_many": "pulling",
    "convert_file": "pulling",
    "publish": "sharing.publishing",
    "create_bundle": "sharing.bundles",
    "install_bundle": "sharing.bundles",
    "pretrain": "pretraining",
    "read_dataset": "evaluation.data",
    "read_card": "datasets",
    "linear_probe": "evaluation.probe",
    "finetune": "evaluation.finetune",
    "fewshot": "evaluation.fewshot",
    "segment": "evaluation.segment",
    "compare": "evaluation.compare",
    "saliency": "evaluation.saliency",
    "invariance": "evaluation.invariance",
    "multiview_invariance": "evaluation.invariance",
    "reconstruct": "evaluation.reconstruction",
    "transforms": "preprocessing",
    "save_monai": "frameworks.monai_folder",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'ssl_zoo' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
