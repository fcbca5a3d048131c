"""``pretrain``: a method, unlabelled data and settings in; model folders and a loss curve out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..store import cache
from ..errors import ModelFolderError
from ..runtime import Speed, distributed_session
from ..intensity import Intensity, intensity_of
from .base import Method, MethodSettings, build_method
from .data import Sample, TrainingDataError, ViewDataset, scan
from .loop import LoopSettings, TrainResult, train
from .monitor import Monitor, MonitorSettings, for_method, split_validation
from .output import CURVE, TrainingRecord, write_outputs
from .augment import recipe_views
from .views import ViewRecipe, images_only, recipe_for
from ..extras import extra_imports


VIEW_PLACES = ("auto", "device", "workers")


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
    views: str = "auto",
    intensity: Intensity | str | None = None,
    watch: MonitorSettings | None = None,
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
        views: Where a generic view recipe is drawn: "device" (batched, kornia), "workers" (per sample on the
            CPU) or "auto" (the device on CUDA, else the workers).
        intensity: How stored pixels become [0, 1]: an ``ssl_zoo.intensity`` recipe, or the registry entry or
            dataset card whose recipe to use (``"lidc-moco-v2"``: min-max per slice); default "auto".
        watch: Validation split, output selection, early stopping, probe, W&B; default: 5 % validation, the
            method's own ``select`` / ``early_stop`` (last checkpoint, no early stop unless it says).

    Returns:
        ``{"model": folder, ["unet": folder]}`` (on the main process; empty on the others).

    Raises:
        UnknownMethodError, TrainingDataError, NonFiniteLossError, ResumeError, ModelFolderError.

    Example:
        >>> pretrain("moco-v2", "scans/", "runs/moco", epochs=200, batch_size=256)["model"]
        PosixPath('runs/moco/model')
    """
    intensity_of(intensity)  # a bad recipe or name, or a bad views place, fails before any work
    check_views(views)
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
        recipe = device_recipe(model, views, speed.device.type)
        dataset, monitor = watched_data(model, Path(data), intensity, for_method(watch, model), recipe, run_dir,
                                        seed=seed, is_main=dist.is_main)
        signature = {"method": method, "arch": arch, "image_size": image_size, "options": dict(options or {}),
                     "val_fraction": monitor.settings.val_fraction}
        result = train(model, dataset, run_dir, loop_settings, speed, dist, resume=resume, signature=signature,
                       views=recipe, monitor=monitor)
        watched = monitor.finish(model, result.steps)
        if not dist.is_main:
            return {}
        best = watched["output_step"] if watched["output"] == "best-validation" else None
        curve = plot_losses(result, run_dir / CURVE, method, monitor.state.validation, best)
        record = TrainingRecord(method, model.paper, str(data), epochs, batch_size, result.steps,
                                result.final_loss, str(init or "random"), image_size, model.settings.mean,
                                model.settings.std, watched={**watched, "views": _views_record(recipe, model),
                                                             "intensity": _intensity_record(intensity),
                                                             "intensity_recipe": str(intensity_of(intensity))})
        return write_outputs(model.cpu(), run_dir, record, curve)


def watched_data(method: Method, data: Path, intensity: Intensity | str | None, watch: MonitorSettings,
                 recipe: ViewRecipe | None, run_dir: Path, *, seed: int, is_main: bool) -> tuple[ViewDataset, Monitor]:
    """The training views and the monitor of a run: the samples split into training and validation (seeded,
    grouped), each yielding plain images when ``recipe`` is drawn on the device, else the workers' views."""
    size = method.settings.image_size
    train_samples, val_samples = split_validation(training_samples(method, data, intensity), watch.val_fraction,
                                                  seed=seed)
    view_fn = images_only if recipe is not None else worker_views(method)
    validation = ViewDataset(val_samples, view_fn, size) if val_samples else None
    monitor = Monitor(watch, run_dir, validation=validation, probe=probe_set(watch, size, seed), is_main=is_main)
    return ViewDataset(train_samples, view_fn, size), monitor


def check_views(views: str) -> None:
    """Raises ``TrainingDataError`` unless ``views`` is "auto", "device" or "workers"."""
    if views not in VIEW_PLACES:
        raise TrainingDataError(f"views must be one of {VIEW_PLACES}, got {views!r}")


def device_recipe(method: Method, views: str, device_type: str) -> ViewRecipe | None:
    """The view recipe to draw on the device, or None when the data-loader workers draw the views.

    Raises:
        TrainingDataError: ``views`` is not "auto", "device" or "workers".
    """
    check_views(views)
    recipe = recipe_for(method)
    on_device = views == "device" or (views == "auto" and device_type == "cuda")
    return recipe if on_device else None


def worker_views(method: Method):
    """What the data-loader workers draw per sample: the method's generic recipe on the CPU, else its ``views``."""
    generic = recipe_for(method)
    return recipe_views(generic) if generic is not None else method.views


def probe_set(watch: MonitorSettings, image_size: int, seed: int):
    """The resized ``--monitor`` set, or None."""
    if watch.probe_data is None:
        return None
    from .probe import load_probe_set

    return load_probe_set(watch.probe_data, image_size, seed=seed)


def _intensity_record(intensity: Intensity | str | None) -> str:
    recipe = str(intensity_of(intensity))
    return recipe if intensity is None or str(intensity) == recipe else f"{recipe} (from {intensity})"


def _views_record(recipe: ViewRecipe | None, method: Method) -> str:
    if recipe is not None:
        return f"{recipe.name} on the device (kornia, per-sample parameters)"
    generic = recipe_for(method)
    return f"{generic.name} in the data-loader workers" if generic else "the method's own, in the data-loader workers"


def training_samples(method: Method, data: Path, intensity: Intensity | str | None = None) -> list[Sample]:
    """The samples under ``data`` read with ``intensity``, checked against what the method needs."""
    samples = scan(data, intensity)
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


def plot_losses(result: TrainResult, path: Path, title: str, validation: list[tuple[int, float]] | None = None,
                selected: int | None = None) -> Path | None:
    """The loss of every step, the validation loss of every epoch and the step of the output checkpoint when it
    is not the last, as a PNG (matplotlib's Agg backend)."""
    if not result.losses:
        return None
    with extra_imports():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), dpi=100)  # no pyplot: the caller's matplotlib backend stays as it is
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(range(1, len(result.losses) + 1), result.losses, linewidth=1, label="training (per step)")
    if validation:
        steps, values = zip(*validation)
        ax.plot(steps, values, "o-", markersize=3, linewidth=1.2, label="validation (per epoch)")
    if selected is not None:
        ax.axvline(selected, color="0.4", linestyle=":", linewidth=1, label=f"output checkpoint (step {selected})")
    if validation or selected is not None:
        ax.legend(frameon=False)
    ax.set(xlabel="step", ylabel="loss", title=f"{title}: final {result.final_loss:.4g}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path
