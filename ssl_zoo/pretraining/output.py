"""A finished run as model folders: the backbone in the registry format, the U-Net beside it, the card.

``RUN_DIR/model/`` is what ``ssl_zoo.load``, ``timm.create_model("local-dir:...")`` and ``ssl-zoo publish``
take: timm key names, exactly the head-less architecture's keys (checked like a conversion), a timm
``config.json`` and a model card that records the training. U-Net methods also write ``RUN_DIR/unet/``: the
whole smp U-Net (``encoder.*``, ``decoder.*``, ``segmentation_head.*``) with ``ssl_zoo.parts`` in its config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..architectures import ArchSpec, get_arch, trunk_shapes
from ..converters.convert import normalize_tensor, unshare, validate
from ..modelfolder.card import yaml_header
from ..modelfolder.config import folder_config
from ..modelfolder.files import write_folder
from ..registry import Preprocessing


@dataclass(frozen=True)
class TrainingRecord:
    """What the card and ``config.json`` say about the run.

    Attributes:
        settings: The recipe record (``recipes.Resolved.record()``: preset, effective settings, options,
            sources, deviations), stored as given under ``config.json``'s ``ssl_zoo.training.settings`` and
            listed on the card.
        watched: ``monitor.Monitor.record()`` plus the views and intensity: which checkpoint is the output and
            why, the validation history, under ``config.json``'s ``ssl_zoo.training.watched``.
    """

    method: str
    paper: str
    data: str
    epochs: int
    batch_size: int
    steps: int
    final_loss: float
    init: str
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    watched: dict[str, Any] = field(default_factory=dict)

    def preprocessing(self) -> Preprocessing:
        """The evaluation input pipeline of the trained network: the training's size, normalisation and
        intensity recipe (so raw DICOM / HU input is read as it was in training)."""
        side = self.image_size
        return Preprocessing(input_size=(3, side, side), mean=tuple(self.mean), std=tuple(self.std),
                             channels="RGB (grey repeated)", interpolation="bilinear",
                             intensity=self.watched.get("intensity_recipe", "auto"),
                             notes="pre-trained with ssl_zoo on images resized to the input size, intensities in [0,1]")


def backbone_tensors(module: nn.Module, arch: str, name: str) -> dict[str, torch.Tensor]:
    """The backbone's state dict, float32 and contiguous, checked against the architecture's exact key set."""
    tensors = {k: normalize_tensor(k, v.cpu()) for k, v in module.state_dict().items()}
    validate(tensors, trunk_shapes(arch), name, get_arch(arch))
    return unshare(tensors)


def config(spec: ArchSpec, record: TrainingRecord, weights_sha256: str, parts: list[str]) -> dict[str, Any]:
    """``config.json`` from the shared builder (a U-Net folder names ``unet-<encoder>``, as ``architectures/unet.py``),
    with the preprocessing record that lets ``ssl_zoo.transforms(RUN_DIR/model)`` rebuild the input pipeline."""
    zoo = {"name": f"{record.method}-pretrained", "method": record.method, "version": __version__,
           "weights_sha256": weights_sha256, "parts": parts, "training": _training(record)}
    return folder_config(spec, record.preprocessing(), zoo,
                         architecture=spec.timm_name if parts == ["backbone"] else f"unet-{spec.name}",
                         pool_size=(max(1, record.image_size // 32),) * 2,
                         description=f"{record.method} pre-trained with ssl_zoo on {record.data}")


def _training(record: TrainingRecord) -> dict[str, Any]:
    return {"data": record.data, "epochs": record.epochs, "batch_size": record.batch_size, "steps": record.steps,
            "final_loss": record.final_loss, "init": record.init, "image_size": record.image_size,
            "settings": dict(record.settings), **({"watched": record.watched} if record.watched else {})}


def recipe_section(recipe: dict[str, Any]) -> str:
    """The card's "Recipe" section: preset, every effective setting, the sources and each deviation."""
    if not recipe:
        return ""
    shown = {**recipe["settings"], "peak_lr": recipe["peak_lr"]}
    shown["views"] = shown.get("views") or "the method's own"
    settings = ", ".join(f"{k} `{v}`" for k, v in shown.items())
    options = ", ".join(f"{k} `{v}`" for k, v in recipe["options"].items()) or "none"
    lines = [f"## Recipe (preset `{recipe['preset']}`)", "", f"- **Settings:** {settings}",
             f"- **Method options:** {options}", "- **Sources:**", *(f"  - {s}" for s in recipe["sources"]),
             "- **Deviations from the paper:**", *(f"  - {d}" for d in recipe["deviations"] or ["none"])]
    if "resume_rule" in recipe:
        lines.append(f"- **Extended runs:** {recipe['resume_rule']}")
    return "\n".join(lines) + "\n"


def watched_lines(watched: dict[str, Any]) -> str:
    """The card's lines on validation and on which checkpoint this folder holds (and why)."""
    if not watched:
        return ""
    best = watched.get("best_val_loss")
    lines = [f"- **Output checkpoint:** {watched['output']} (step {watched['output_step']}): {watched['why']}",
             f"- **Validation:** {watched['val_images']} images ({watched['val_fraction']:.0%} of the groups)"
             + (f", lowest loss {best:.6g}" if best is not None else ""),
             f"- **Views / intensity:** {watched['views']}; intensity {watched['intensity']}"]
    if watched.get("stopped_early"):
        lines.append(f"- **Early stop:** after {watched['early_stop']} epochs without a lower validation loss")
    return "\n".join(lines) + "\n"


def card(spec: ArchSpec, record: TrainingRecord, weights_sha256: str, what: str) -> str:
    """The README.md: a Hub model card that records the training run and how to load the result."""
    tag = record.method.replace(" ", "-").lower()
    header = yaml_header({"license": "other", "license_name": "set-by-the-data-owner", "library_name": "timm",
                          "pipeline_tag": "image-feature-extraction",
                          "tags": ["image-feature-extraction", "timm", "ssl_zoo", tag]})
    return f"""{header}
# {record.method} {spec.name}, pre-trained with ssl_zoo

{what}

- **Method / paper:** {record.method}, {record.paper}
- **Training data:** `{record.data}`
- **Epochs / batch / steps:** {record.epochs} / {record.batch_size} / {record.steps}
- **Initialised from:** {record.init}
- **Final loss:** {record.final_loss:.6g} (mean of the last steps)
- **Input:** {record.preprocessing().describe()}
- **Weights sha256 (model.safetensors):** `{weights_sha256}`
{watched_lines(record.watched)}
{recipe_section(record.settings)}
## How to load
```python
import ssl_zoo
model = ssl_zoo.load("path/to/this/folder")          # pooled features
import timm
model = timm.create_model("local-dir:path/to/this/folder", pretrained=True)
```
The licence of these weights is the licence of the training data: set it before publishing.
"""


def write_model_folder(dest: Path, tensors: dict[str, torch.Tensor], spec: ArchSpec, record: TrainingRecord,
                       parts: list[str], what: str) -> Path:
    """Write one folder atomically with ``write_folder`` (pictures are added afterwards, see ``pictures.py``)."""
    metadata = {"format": "pt", "name": f"{record.method}-pretrained", "arch": spec.name,
                "method": record.method, "ssl_zoo_version": __version__}

    def texts(sha: str) -> tuple[dict, str]:
        return config(spec, record, sha, parts), card(spec, record, sha, what)

    return write_folder(dest, tensors, metadata, texts)


def write_outputs(method: nn.Module, run_dir: Path, record: TrainingRecord) -> dict[str, Path]:
    """``RUN_DIR/model`` (backbone) and, for U-Net methods, ``RUN_DIR/unet`` (encoder + decoder + head)."""
    arch = method.settings.arch
    spec = get_arch(arch)
    tensors = backbone_tensors(method.encoder(), arch, record.method)
    written = {"model": write_model_folder(run_dir / "model", tensors, spec, record, ["backbone"],
                                           "The backbone (no classifier): pooled features.")}
    unet = method.unet()
    if unet is not None:
        full = unshare({k: normalize_tensor(k, v.cpu()) for k, v in unet.state_dict().items()})
        written["unet"] = write_model_folder(  # the U-Net folder format of ssl_zoo/architectures/unet.py
            run_dir / "unet", full, spec, record, ["encoder", "decoder", "segmentation_head"],
            "The whole U-Net with segmentation_models_pytorch key names (encoder.*, decoder.*, "
            "segmentation_head.*); load it into smp.Unet(...) strictly.")
    return written
