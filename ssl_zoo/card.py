"""The text of a model folder: timm's ``config.json`` and the Hugging Face model card ``README.md``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .architectures import ArchSpec
from .registry import Entry

# SPDX ids the Hub knows; anything else is published as license: other with its name.
HUB_LICENSES = {"mit": "mit", "bsd-2-clause": "bsd-2-clause", "bsd-3-clause": "bsd-3-clause",
                "apache-2.0": "apache-2.0", "cc-by-nc-4.0": "cc-by-nc-4.0"}


@dataclass(frozen=True)
class Provenance:
    """Where a model folder's weights came from and how they were converted."""

    source_url: str
    source_file: str
    source_sha256: str
    family: str
    rules: tuple[str, ...] = ()
    dropped: dict[str, int] = field(default_factory=dict)
    ssl_zoo_version: str = ""


def pretrained_cfg(entry: Entry, spec: ArchSpec) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` for the entry; only keys timm's ``PretrainedCfg`` accepts."""
    pre = entry.preprocessing
    channels = pre.input_size[0]
    return {
        "input_size": list(pre.input_size),
        "interpolation": pre.interpolation,
        "crop_pct": pre.crop_pct,
        "crop_mode": "center",
        "mean": list(pre.mean) if pre.mean else [0.0] * channels,
        "std": list(pre.std) if pre.std else [1.0] * channels,
        "num_classes": 0,
        "pool_size": list(spec.pool_size),
        "first_conv": spec.first_conv,
        "classifier": spec.classifier,
        "license": entry.license.lower(),
        "origin_url": entry.code_url,
        "paper_name": entry.paper,
        "paper_ids": _paper_id(entry.paper_url),
        "description": f"{entry.method} ({entry.pretraining_data}) converted by ssl_zoo from {entry.checkpoint.url}",
    }


def _paper_id(url: str) -> str:
    """timm's form of a paper reference: ``arXiv:2003.04297`` for an arXiv link, else the URL."""
    marker = "arxiv.org/abs/"
    return "arXiv:" + url.split(marker, 1)[1] if marker in url else url


def config_dict(entry: Entry, spec: ArchSpec, prov: Provenance, weights_sha256: str) -> dict[str, Any]:
    """The whole ``config.json``: what timm's ``local-dir:``/``hf-hub:`` reads, plus an ``ssl_zoo`` block."""
    return {
        "architecture": spec.timm_name,
        "num_classes": 0,
        "num_features": spec.num_features,
        "global_pool": "avg",
        "pretrained_cfg": pretrained_cfg(entry, spec),
        "ssl_zoo": {
            "name": entry.name,
            "method": entry.method,
            "version": prov.ssl_zoo_version,
            "converter_family": prov.family,
            "source_url": prov.source_url,
            "source_file": prov.source_file,
            "source_sha256": prov.source_sha256,
            "weights_sha256": weights_sha256,
            "license": entry.license,
            "non_commercial": entry.non_commercial,
            "preprocessing": entry.preprocessing.describe(),
            "parts": ["backbone"],
        },
    }


def _yaml_header(entry: Entry) -> str:
    license_id = HUB_LICENSES.get(entry.license.lower())
    lic = f"license: {license_id}" if license_id else f"license: other\nlicense_name: {entry.license}"
    tags = ["image-feature-extraction", "timm", "ssl_zoo", entry.method.lower().replace(" ", "-"), *entry.tags]
    tag_lines = "\n".join(f"- {t}" for t in dict.fromkeys(tags))
    dataset = "imagenet-1k" if "imagenet" in entry.pretraining_data.lower() else entry.pretraining_data
    return (f"---\n{lic}\nlibrary_name: timm\npipeline_tag: image-feature-extraction\n"
            f"tags:\n{tag_lines}\ndatasets:\n- {dataset}\n---\n")


def model_card(entry: Entry, spec: ArchSpec, prov: Provenance, weights_sha256: str) -> str:
    """The README.md of a model folder: a Hub model card with provenance and three ways to load it."""
    nc = ("\n**Non-commercial licence:** these weights may only be used for non-commercial purposes "
          f"({entry.license}).\n" if entry.non_commercial else "")
    dropped = "; ".join(f"{n} keys {why}" for why, n in prov.dropped.items()) or "nothing"
    rules = "\n".join(f"  - {r}" for r in prov.rules) or "  - none (already torchvision names)"
    pre = entry.preprocessing
    return f"""{_yaml_header(entry)}
# {entry.name}: {entry.method} {spec.name}

{entry.description}
{nc}
- **Method / paper:** {entry.method}, [{entry.paper}]({entry.paper_url})
- **Code:** {entry.code_url}
- **Pretraining data:** {entry.pretraining_data}
- **Licence:** {entry.license}
- **Architecture:** {spec.name} backbone (no classifier), {spec.num_features}-d pooled features

## Preprocessing
{pre.describe()}; resize {pre.resize or 'none'} then center crop, {pre.interpolation} interpolation.
{pre.notes}

## Provenance
- Upstream file: {prov.source_url} (`{prov.source_file}`)
- Upstream sha256: `{prov.source_sha256}`
- Converted weights sha256 (model.safetensors): `{weights_sha256}`
- Converter: ssl_zoo {prov.ssl_zoo_version}, family `{prov.family}`; rules:
{rules}
- Dropped: {dropped}. Every tensor was compared after writing.

## How to load
```python
import ssl_zoo
model = ssl_zoo.load("{entry.name}")                      # pooled features
```
```python
import timm
model = timm.create_model("local-dir:/path/to/this/folder", pretrained=True)
model = timm.create_model("hf-hub:ORG/REPO", pretrained=True)   # once published
```
```python
import torch, torchvision, safetensors.torch
model = torchvision.models.{spec.name}()
model.{spec.classifier} = torch.nn.Identity()                  # the file holds the backbone only
model.load_state_dict(safetensors.torch.load_file("model.safetensors"))   # strict: every key must match
```
"""
