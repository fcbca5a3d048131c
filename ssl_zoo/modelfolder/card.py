"""The text of a model folder: timm's ``config.json`` and the Hugging Face model card ``README.md``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..architectures import ArchKind, ArchSpec, get_arch
from ..registry import Entry
from .config import folder_config

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


def _paper_id(url: str) -> str:
    """timm's form of a paper reference: ``arXiv:2003.04297`` for an arXiv link, else the URL."""
    marker = "arxiv.org/abs/"
    return "arXiv:" + url.split(marker, 1)[1] if marker in url else url


def config_dict(entry: Entry, spec: ArchSpec, prov: Provenance, weights_sha256: str) -> dict[str, Any]:
    """The whole ``config.json`` of a converted entry: ``folder_config`` with its provenance."""
    zoo = {"name": entry.name, "method": entry.method, "version": prov.ssl_zoo_version,
           "converter_family": prov.family, "source_url": prov.source_url, "source_file": prov.source_file,
           "source_sha256": prov.source_sha256, "weights_sha256": weights_sha256, "license": entry.license,
           "non_commercial": entry.non_commercial}
    description = f"{entry.method} ({entry.pretraining_data}) converted by ssl_zoo from {entry.checkpoint.url}"
    return folder_config(spec, entry.preprocessing, zoo, license=entry.license.lower(), origin_url=entry.code_url,
                         paper_name=entry.paper, paper_ids=_paper_id(entry.paper_url), description=description)


# Hub dataset ids for the pretraining sets, found by a keyword of ``Entry.pretraining_data``.
HUB_DATASETS = {"imagenet": "imagenet-1k", "chexpert": "chexpert", "mimic": "mimic-cxr", "lidc": "lidc-idri"}
REPO_PLACEHOLDER = "ORG/REPO"
_HUB_REF = re.compile(r"hf-hub:[\w.\-]+/[\w.\-]+")


# Architecture kind -> (the Hub's library_name, pipeline_tag): timm backbones extract features; U-Nets segment.
HUB_LIBRARIES = {ArchKind.TIMM: ("timm", "image-feature-extraction"),
                 ArchKind.SMP_UNET: ("segmentation-models-pytorch", "image-segmentation"),
                 ArchKind.UNET3D: ("pytorch", "image-segmentation")}


def card_metadata(entry: Entry) -> dict[str, Any]:
    """The YAML header of the card: the Hub's model-card metadata (library, licence, task, datasets, tags)."""
    license_id = HUB_LICENSES.get(entry.license.lower())
    licence = {"license": license_id} if license_id else {
        "license": "other", "license_name": re.sub(r"[^a-z0-9.\-]+", "-", entry.license.lower()).strip("-"),
        "license_link": entry.code_url or entry.paper_url}
    text = entry.pretraining_data.lower()
    datasets = [hub_id for key, hub_id in HUB_DATASETS.items() if key in text] or [_slug(entry.pretraining_data)]
    library, pipeline = HUB_LIBRARIES[get_arch(entry.arch).kind]
    tags = [pipeline, library, "ssl_zoo", _slug(entry.method), entry.arch, *entry.tags]
    if entry.non_commercial:
        tags.append("non-commercial")
    return {**licence, "library_name": library, "pipeline_tag": pipeline,
            "tags": list(dict.fromkeys(tags)), "datasets": datasets}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def yaml_header(metadata: dict[str, Any]) -> str:
    """A model card's YAML header (the Hub's model-card metadata) between ``---`` lines."""
    import yaml  # a dependency of huggingface_hub; quotes whatever a registry text needs quoting

    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True) + "---\n"


def with_repo_id(card: str, repo_id: str) -> str:
    """The card with every ``hf-hub:`` reference pointing at ``repo_id`` (done when it is published)."""
    return _HUB_REF.sub(f"hf-hub:{repo_id}", card.replace(_placeholder_note(REPO_PLACEHOLDER), ""))


def _licence_section(entry: Entry) -> str:
    unchanged = "Converting the weights to safetensors does not change these terms."
    if not entry.non_commercial:
        return (f"{entry.license}: commercial and non-commercial use are allowed under its terms (keep the "
                f"copyright notice). {unchanged}")
    terms = ("you may use, share and adapt them with attribution, " if entry.license.lower().startswith("cc-by-nc")
             else "")
    return (f"**Non-commercial use only.** The weights are released under {entry.license}: {terms}for research and "
            f"other non-commercial purposes only; any commercial use needs the authors' permission. {unchanged}")


def _render_block(value: Any, indent: str = "") -> str:
    """A nested JSON block (parity results, input conventions) as a Markdown list."""
    if isinstance(value, dict):
        return "\n".join(f"{indent}- {k.replace('_', ' ')}:\n{_render_block(v, indent + '  ')}"
                         if isinstance(v, (dict, list)) else f"{indent}- {k.replace('_', ' ')}: {v}"
                         for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(_render_block(v, indent) for v in value)
    return f"{indent}- {value}"


def _parity_section(zoo: dict[str, Any]) -> str:
    parts = [f"### {title}\n{_render_block(zoo[key])}\n" for key, title in
             (("parity", "Numerical parity with the source framework"), ("input_convention", "Input convention"))
             if zoo.get(key)]
    return "\n## Parity\n" + "\n".join(parts) if parts else ""


def _placeholder_note(repo: str) -> str:
    if repo != REPO_PLACEHOLDER:
        return ""
    return f"`{REPO_PLACEHOLDER}` below becomes the repository's id when `ssl-zoo publish` uploads this folder.\n\n"


def _architecture_line(spec: ArchSpec) -> str:
    if spec.kind is ArchKind.TIMM:
        return f"{spec.name} backbone (no classifier), {spec.num_features}-d pooled features"
    return f"{spec.name} with {', '.join(spec.parts)} (smp/Models Genesis key names; not a timm model)"


def _how_to_load(entry: Entry, spec: ArchSpec) -> str:
    repo = (entry.hf_repo or REPO_PLACEHOLDER).partition("@")[0]
    if spec.kind is not ArchKind.TIMM:
        return _how_to_load_unet(entry, spec, repo)
    return f"""## How to load
{_placeholder_note(repo)}With ssl_zoo (checks the sha256 above after downloading):
```python
import ssl_zoo
model = ssl_zoo.load("hf-hub:{repo}")        # this folder, from the Hub
model = ssl_zoo.load("{entry.name}")         # by registry name: from the Hub or converted from upstream
```
With timm alone:
```python
import timm
model = timm.create_model("hf-hub:{repo}", pretrained=True)
model = timm.create_model("local-dir:/path/to/this/folder", pretrained=True)
```
With torchvision and safetensors:
```python
import torch, torchvision, safetensors.torch
model = torchvision.models.{spec.name}()
model.{spec.classifier} = torch.nn.Identity()                  # the file holds the backbone only
model.load_state_dict(safetensors.torch.load_file("model.safetensors"))   # strict: every key must match
```
"""


def _how_to_load_unet(entry: Entry, spec: ArchSpec, repo: str) -> str:
    # timm cannot build these: only ssl_zoo (or the architecture's own code) reads the folder.
    plain = ""
    if spec.kind is ArchKind.SMP_UNET:
        plain = f"""With segmentation_models_pytorch and safetensors:
```python
import safetensors.torch, segmentation_models_pytorch as smp
state = safetensors.torch.load_file("model.safetensors")
model = smp.Unet("{spec.encoder}", encoder_weights=None, classes=state["segmentation_head.0.weight"].shape[0])
model.load_state_dict(state)                                    # strict: every key must match
```
"""
    return f"""## How to load
{_placeholder_note(repo)}With ssl_zoo (checks the sha256 above after downloading):
```python
import ssl_zoo
model = ssl_zoo.load("{entry.name}", task="segmentation", classes=2)   # the whole network, head resized to 2
encoder = ssl_zoo.load("{entry.name}")                                  # the encoder as a backbone
model = ssl_zoo.load("hf-hub:{repo}", task="segmentation")             # this folder, from the Hub
```
{plain}"""


def model_card(entry: Entry, spec: ArchSpec, prov: Provenance, weights_sha256: str,
               config: dict[str, Any] | None = None) -> str:
    """The README.md of a model folder: a Hub model card with provenance and three ways to load it.

    Args:
        entry: The registry entry.
        spec: Its architecture.
        prov: Where the weights came from.
        weights_sha256: The sha256 of ``model.safetensors``.
        config: The folder's ``config.json`` when it carries more than ``config_dict`` writes (its
            ``ssl_zoo.parity`` and ``ssl_zoo.input_convention`` blocks are shown); default ``config_dict``'s.
    """
    zoo = (config or config_dict(entry, spec, prov, weights_sha256))["ssl_zoo"]
    dropped = "; ".join(f"{n} keys {why}" for why, n in prov.dropped.items()) or "nothing"
    rules = "\n".join(f"  - {r}" for r in prov.rules) or "  - none (already torchvision names)"
    pre = entry.preprocessing
    return f"""{yaml_header(card_metadata(entry))}
# {entry.name}: {entry.method} {spec.name}

{entry.description}

- **Method / paper:** {entry.method}, [{entry.paper}]({entry.paper_url})
- **Code:** {entry.code_url}
- **Pretraining data:** {entry.pretraining_data}
- **Architecture:** {_architecture_line(spec)}

## Licence
{_licence_section(entry)}

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
{_parity_section(zoo)}
{_how_to_load(entry, spec)}"""
