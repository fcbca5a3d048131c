"""``pretrain``: a method, unlabelled data and settings in; model folders and a loss curve out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..store import cache
from ..errors import ModelFolderError
from ..runtime import Speed, distributed_session
from .base import Method, MethodSettings, build_method
from .data import TrainingDataError, ViewDataset, scan
from .loop import LoopSettings, TrainResult, train
from .output import CURVE, TrainingRecord, write_outputs
from ..extras import extra_imports


def pretrain(
    method: str,
    data: str | Path,
    out: str | Path,
    *,
    epochs: int = 100,
    batch_size: int = 256,
    arch: str = "resnet50",
    image_size: int = 224,
    init: str | Path | None = None,
    resume: bool = False,
    compile: bool = False,
    device: str | None = None,
    workers: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    warmup_epochs: float = 0.0,
    clip: float | None = 3.0,
    seed: int = 0,
    checkpoint_every: int = 500,
    options: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Path]:
    """Pre-train ``method`` on the images under ``data``; write model folders under ``out``.

    Runs in one process or, launched by ``torchrun``, on every process of the job (``batch_size`` is global).

    Args:
        method: "moco-v2", "simclr", "byol", "swav", "barlow-twins", "dira", "magical", "chaitanya-global",
            "chaitanya-local" or "spark".
        data: A folder of images / ``.npy`` / ``.npz`` / NIfTI files, or one such file.
        out: The run folder: ``checkpoint.pt``, ``loss_curve.png``, ``model/`` (and ``unet/``).
        init: Start the backbone from a registry name (``"moco-v2"``) or a model folder; default random.
        resume: Continue the run in ``out`` from its checkpoint (same settings).
        compile: ``torch.compile`` the method's networks.
        options: Method options (``tau``, ``queue``, ``mask_ratio`` ...), see each method's ``defaults``.
        progress: Show a progress bar (also off with ``SSL_ZOO_QUIET=1``).

    Returns:
        ``{"model": folder, ["unet": folder]}`` (on the main process; empty on the others).

    Raises:
        UnknownMethodError, TrainingDataError, NonFiniteLossError, ResumeError, ModelFolderError.

    Example:
        >>> pretrain("moco-v2", "scans/", "runs/moco", epochs=200, batch_size=256)["model"]
        PosixPath('runs/moco/model')
    """
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    speed = Speed.fast(device, compile=compile, workers=workers)
    loop_settings = LoopSettings(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                 warmup_epochs=warmup_epochs, clip=clip, seed=seed,
                                 checkpoint_every=checkpoint_every,
                                 progress=progress and not cache.env_flag(cache.QUIET_ENV))
    with speed.numerics(), distributed_session(speed.device) as dist:
        torch.manual_seed(seed)  # every process builds the same networks
        model = build_method(method, MethodSettings(arch=arch, image_size=image_size, options=dict(options or {})))
        if init is not None and not resume:
            initialise(model, init, progress=progress)
        dataset = ViewDataset(training_samples(model, Path(data)), model.views, image_size)
        signature = {"method": method, "arch": arch, "image_size": image_size, "options": dict(options or {})}
        result = train(model, dataset, run_dir, loop_settings, speed, dist, resume=resume, signature=signature)
        if not dist.is_main:
            return {}
        curve = plot_losses(result, run_dir / CURVE, method)
        record = TrainingRecord(method, model.paper, str(data), epochs, batch_size, result.steps,
                                result.final_loss, str(init or "random"), image_size, model.settings.mean,
                                model.settings.std)
        return write_outputs(model.cpu(), run_dir, record, curve)


def training_samples(method: Method, data: Path) -> list:
    """The samples under ``data``, checked against what the method needs."""
    samples = scan(data)
    if method.needs_volumes and any(s.volume < 0 for s in samples):
        raise TrainingDataError(f"{method.name} needs volumes (NIfTI files or an .npz 'volumes' array), "
                                f"but {data} holds 2-D images")
    return samples


def initialise(method: Method, init: str | Path, *, progress: bool = True) -> None:
    """Load the backbone of a registry entry or model folder into ``method`` (strictly), then its twins.

    A U-Net folder gives its encoder.

    Raises:
        ModelFolderError: When the folder's backbone architecture is not the method's.
    """
    from ..architectures.tasks import backbone_part
    from ..modelfolder.files import read_config, read_weights
    from ..loading import folder_arch
    from ..resolve import resolve_folder

    folder = resolve_folder(init, progress=progress)
    arch, weights = backbone_part(folder_arch(read_config(folder), folder), read_weights(folder))
    if arch != method.settings.arch:
        raise ModelFolderError(f"{init} is a {arch}, the run trains a {method.settings.arch}: pass --arch {arch}")
    method.encoder().load_state_dict(weights)  # strict (smp's DenseNet encoder takes no flag)
    method.reset_targets()


def plot_losses(result: TrainResult, path: Path, title: str) -> Path | None:
    """The loss of every step as a PNG (matplotlib's Agg backend: no display needed)."""
    if not result.losses:
        return None
    with extra_imports():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)  # no pyplot: the caller's matplotlib backend stays as it is
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(1, len(result.losses) + 1), result.losses, linewidth=1)
    ax.set(xlabel="step", ylabel="loss", title=f"{title}: final {result.final_loss:.4g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path
