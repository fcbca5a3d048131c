"""Save a MONAI network that ``ssl_zoo.load(..., framework="monai")`` built as a model folder, card included.

The folder is a model folder (``model.safetensors`` under MONAI's key names, ``config.json``, ``README.md``) written
by the one folder writer; ``config.json["ssl_zoo"]["monai"]`` records the network and its constructor arguments, so
``ssl_zoo.load(folder, framework="monai")`` rebuilds it, and the card says whether the weights were inflated to 3-D.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .. import __version__
from ..architectures import get_arch
from ..errors import ModelFolderError
from ..modelfolder.card import HUB_LICENSES, yaml_header
from ..modelfolder.config import folder_config
from ..modelfolder.files import write_folder
from ..registry import Preprocessing
from ..registry.schema import parse_preprocessing
from .monai import ABOUT


def save_monai(model: nn.Module, dest: str | Path) -> Path:
    """Write ``model`` (its current weights: fine-tuned or not) as a model folder at ``dest``.

    Args:
        model: A network from ``ssl_zoo.load(..., framework="monai")``.
        dest: The folder to write; replaced as a whole if it exists.

    Returns:
        ``dest`` as a ``Path``.

    Raises:
        ModelFolderError: When ``model`` was not built by ``ssl_zoo.load(..., framework="monai")``.

    Example:
        >>> model = ssl_zoo.load("moco-v2", framework="monai", spatial_dims=3)  # doctest: +SKIP
        >>> save_monai(model, "moco-v2-3d")                                      # doctest: +SKIP
    """
    record = getattr(model, "ssl_zoo_record", None)
    if not isinstance(record, dict):
        raise ModelFolderError("this model was not built by ssl_zoo.load(..., framework='monai'): save it with "
                               "torch.save(model.state_dict(), ...) instead")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    network = {k: v for k, v in record.items() if k not in ABOUT}
    stored = record.get("preprocessing_record")
    pre = parse_preprocessing(str(dest), stored) if stored else Preprocessing()

    def texts(weights_sha256: str) -> tuple[dict[str, Any], str]:
        zoo = {"framework": "monai", "monai": network, "version": __version__, "weights_sha256": weights_sha256,
               "inflated": record.get("inflated"), "source": record.get("source")}
        config = folder_config(get_arch(record["arch"]), pre, zoo, architecture=f"monai-{network['network']}")
        return config, monai_card(config)

    return write_folder(Path(dest), tensors, {"format": "pt"}, texts)


def monai_card(config: dict[str, Any]) -> str:
    """The README.md of a saved MONAI folder: what network, from which weights, inflated or not, how to load it."""
    zoo = config["ssl_zoo"]
    network, source = zoo["monai"], zoo.get("source") or {}
    dims = network["kwargs"]["spatial_dims"]
    arguments = ", ".join(f"{k}={v!r}" for k, v in network["kwargs"].items())
    pooled = "\nmodel.class_layers.out = torch.nn.Identity()   # pooled features" if network.get("pooled_features") \
        else ""
    terms = " **Non-commercial use only.**" if source.get("non_commercial") else ""
    return f"""{yaml_header(card_metadata(zoo))}
# {source.get('name', 'model')}: MONAI {network['network']} ({dims}-D)

MONAI `monai.networks.nets.{network['network']}` built by ssl_zoo {zoo['version']} from the model folder of
`{source.get('name', '?')}` ({source.get('method', '?')}; weights sha256 `{source.get('weights_sha256', '?')}`,
upstream {source.get('source_url', '?')}).

## Weights
{_weights_section(zoo)}
- model.safetensors sha256: `{zoo['weights_sha256']}` (MONAI key names)

## Licence
{source.get('license', 'unknown')}, as the source weights.{terms}

## How to load
```python
import ssl_zoo
model = ssl_zoo.load("/path/to/this/folder", framework="monai")
```
With MONAI and safetensors alone (``import ssl_zoo.frameworks.monai_encoder`` first for a `resnet18-torchvision`
backbone):
```python
import monai, safetensors.torch, torch
model = monai.networks.nets.{network['network']}({arguments}){pooled}
model.load_state_dict(safetensors.torch.load_file("model.safetensors"))
```
"""


def _weights_section(zoo: dict[str, Any]) -> str:
    if not zoo.get("inflated"):
        return "Not inflated: the 2-D weights as converted."
    return (f"**Inflated from 2-D weights to 3-D.** Rule: {zoo['inflated']}.\n\n"
            f"Input: volumes whose intensities are prepared as the 2-D source's ({zoo['preprocessing']}); "
            "`ssl_zoo.transforms` of this folder is that 2-D pipeline, for one slice.")


def card_metadata(zoo: dict[str, Any]) -> dict[str, Any]:
    """The Hub metadata of a saved MONAI folder's card: licence, library, tags."""
    source = zoo.get("source") or {}
    licence = HUB_LICENSES.get(str(source.get("license", "")).lower(), "other")
    tags = ["monai", "ssl_zoo", f"{zoo['monai']['kwargs']['spatial_dims']}d"]
    tags += ["inflated-2d-to-3d"] if zoo.get("inflated") else []
    tags += ["non-commercial"] if source.get("non_commercial") else []
    return {"license": licence, "library_name": "monai", "tags": tags}
