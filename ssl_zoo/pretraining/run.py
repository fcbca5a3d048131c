"""``pretrain``: a method, unlabelled data and settings in; model folders and a loss curve out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import ModelFolderError, ResumeError, RunExistsError, TrainingDataError
from ..intensity import Intensity, intensity_of
from ..runtime import Speed, distributed_session
from ..store import cache
from ..store.atomic import check_output_folder
from .augment import recipe_views
from .base import Method, MethodSettings, build_method, method_class
from .checkpoint import CHECKPOINT
from .data import Sample, ViewDataset, scan
from .loop import EXTEND_RULE, LoopSettings, train
from .monitor import Monitor, MonitorSettings, for_method, split_validation
from .output import TrainingRecord, write_outputs
from .pictures import add_loss_curve
from .recipes import Recipe, Resolved, resolve
from .views import ViewRecipe, images_only, recipe_for

VIEW_PLACES = ("auto", "device", "workers")


def pretrain(
    method: str,
    data: str | Path,
    out: str | Path,
    *,
    preset: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    arch: str = "resnet50",
    image_size: int | None = None,
    init: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    compile: bool = False,
    device: str | None = None,
    workers: int | None = None,
    lr: float | None = None,
    weight_decay: float | None = None,
    warmup_epochs: float | None = None,
    clip: float | None = None,
    seed: int = 0,
    checkpoint_every: int = 500,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    views: str = "auto",
    intensity: Intensity | str | None = None,
    watch: MonitorSettings | None = None,
) -> dict[str, Path]:
    """Pre-train ``method`` on the images under ``data`` with its paper's recipe; write model folders under ``out``.

    Runs in one process or, launched by ``torchrun``, on every process of the job (``batch_size`` is global).
    Every setting left None takes the recipe's value (``presets.toml``); the card lists the effective
    settings and each deviation from the paper.

    Args:
        method: "moco-v2", "simclr", "byol", "swav", "barlow-twins", "dira", "magical", "chaitanya-global",
            "chaitanya-local" or "spark".
        data: A folder of images / ``.npy`` / ``.npz`` / NIfTI / DICOM files, or one such file.
        out: The run folder: ``checkpoint.pt``, ``loss_curve.png``, ``model/`` (and ``unet/``).
        preset: A named recipe ("wolf-lidc", "magical-cxr", "magical-medmnist", "dira-dir", "dira-dira");
            None is the paper's.
        epochs, batch_size, image_size, lr, weight_decay, warmup_epochs, clip: Override the recipe
            (``lr`` is the peak at the recipe's reference batch; ``clip`` 0 turns clipping off).
        init: Start from a registry name or a model folder (the backbone), or from an earlier run folder of the
            same method (its whole state, e.g. DiRA's dir run for ``--preset dira-dira``).
        resume: Continue the run in ``out`` from its checkpoint; with more ``epochs`` it is extended
            (``loop.EXTEND_RULE``).
        overwrite: Replace a run already in ``out`` (refused otherwise).
        compile: ``torch.compile`` the method's networks.
        options: Method options (``tau``, ``queue``, ``mask_ratio`` ...) over the recipe's.
        progress: Show a progress bar (also off with ``SSL_ZOO_QUIET=1``).
        views: Where a generic view recipe is drawn: "device" (batched, kornia), "workers" (per sample on the
            CPU) or "auto" (the device on CUDA, else the workers).
        intensity: How stored pixels become [0, 1]: an ``ssl_zoo.intensity`` recipe, or the registry entry or
            dataset card whose recipe to use (``"lidc-moco-v2"``: min-max per slice); default "auto".
        watch: Validation split, output selection, early stopping, probe, W&B; default: 5 % validation and the
            recipe's ``select`` / ``early_stop``.

    Returns:
        ``{"model": folder, ["unet": folder]}`` (on the main process; empty on the others).

    Raises:
        UnknownMethodError, UnknownPresetError, PresetError, UnknownViewRecipeError, IntensityError,
        TrainingDataError, NonFiniteLossError, ResumeError, RunExistsError, ModelFolderError, OutputFolderError.

    Example:
        >>> pretrain("moco-v2", "scans/", "runs/moco", preset="wolf-lidc", epochs=200)["model"]
        PosixPath('runs/moco/model')
    """
    method_class(method)  # an unknown name is named as such, not as a preset without its recipe
    resolved = resolve(method, preset, epochs=epochs, batch_size=batch_size, image_size=image_size, lr=lr,
                       weight_decay=weight_decay, warmup_epochs=warmup_epochs, clip=clip)
    recipe = resolved.recipe
    check_request(resolved, views, intensity, init=init, resume=resume)
    run_dir = prepare_run_dir(Path(out), resume=resume, overwrite=overwrite)
    speed = Speed.fast(device, compile=compile, workers=workers)
    loop_settings = LoopSettings(epochs=recipe.epochs, batch_size=recipe.batch_size, recipe=recipe, seed=seed,
                                 checkpoint_every=checkpoint_every,
                                 progress=progress and not cache.env_flag(cache.QUIET_ENV))
    merged = {**resolved.options, **(options or {})}
    with distributed_session(speed.device) as dist:
        model = start_method(method, method_settings(recipe, arch, merged), recipe, seed=seed,
                             init=None if resume else init, progress=progress)
        on_device = device_recipe(model, views, speed.device.type)
        dataset, monitor = watched_data(model, Path(data), intensity, for_method(watch, model), on_device, run_dir,
                                        seed=seed, is_main=dist.is_main)
        signature = {"method": method, "arch": arch, "image_size": recipe.image_size, "options": merged,
                     "val_fraction": monitor.settings.val_fraction}
        result = train(model, dataset, run_dir, loop_settings, speed, dist, resume=resume, signature=signature,
                       views=on_device, monitor=monitor)
        watched = monitor.finish(model, result.steps)
        if not dist.is_main:
            return {}
        watched.update(views=_views_record(on_device, model), intensity=_intensity_record(intensity),
                       intensity_recipe=str(intensity_of(intensity)))
        record = TrainingRecord(method, model.paper, str(data), recipe.epochs, recipe.batch_size, result.steps,
                                result.final_loss, str(init or "random"), recipe.image_size, model.settings.mean,
                                model.settings.std, run_record(resolved, model, options or {}, resume, watch), watched)
        return write_run(model, run_dir, record, result.losses, monitor.state.validation)


def check_request(resolved: Resolved, views: str, intensity: Intensity | str | None, *,
                  init: str | Path | None, resume: bool) -> None:
    """Fail before any work: a bad intensity recipe or name, a bad views place, a stage that needs ``--init``.

    Raises:
        IntensityError: ``intensity`` is neither a recipe nor an entry or card name.
        TrainingDataError: ``views`` is not "auto", "device" or "workers".
        ResumeError: The preset starts from an earlier run and neither ``init`` nor ``resume`` is given.
    """
    intensity_of(intensity)
    check_views(views)
    if resolved.recipe.init_required and init is None and not resume:
        raise ResumeError(f"preset {resolved.preset} starts from an earlier run: pass --init RUN_DIR")


def method_settings(recipe: Recipe, arch: str, options: dict[str, Any]) -> MethodSettings:
    """What shapes the method's networks and views: ``arch``, the recipe's size, normalisation, views and batch."""
    return MethodSettings(arch=arch, image_size=recipe.image_size, mean=tuple(recipe.mean), std=tuple(recipe.std),
                          views=recipe.views, batch_size=recipe.batch_size, options=options)


def start_method(name: str, settings: MethodSettings, recipe: Recipe, *, seed: int, init: str | Path | None,
                 progress: bool) -> Method:
    """Method ``name`` built alike on every process (seeded), told the recipe's output selection and early
    stop (read by the monitor), and started from ``init`` when given."""
    torch.manual_seed(seed)
    model = build_method(name, settings)
    model.select, model.early_stop = recipe.select, recipe.early_stop
    if init is not None:
        initialise(model, init, progress=progress)
    return model


def write_run(model: Method, run_dir: Path, record: TrainingRecord, losses: list[float],
              validation: list[tuple[int, float]]) -> dict[str, Path]:
    """The model folder(s), then the loss curve marking the output step when the best checkpoint was kept."""
    written = write_outputs(model.cpu(), run_dir, record)
    best = record.watched["output_step"] if record.watched["output"] == "best-validation" else None
    add_loss_curve(losses, run_dir, record.method, list(written.values()), validation=validation, selected=best)
    return written


def run_record(resolved: Resolved, method: Method, given: dict[str, Any], resumed: bool,
               watch: MonitorSettings | None = None) -> dict[str, Any]:
    """The recipe record of the card: the options as run, the user's options (and output selection / early
    stop) among the deviations, and the extension rule when the run was resumed."""
    record = resolved.record()
    record["options"] = dict(method.opts)
    paper = {**method.defaults, **resolve(method.name).options}
    record["deviations"] += [f"option {k}={v!r} (set by the user; paper recipe: {paper.get(k)!r})"
                             for k, v in given.items() if v != paper.get(k)]
    recipe = resolved.recipe
    for key, asked, paper_value in (("select", watch and watch.select, recipe.select),
                                    ("early_stop", watch and watch.early_stop, recipe.early_stop)):
        if asked is not None and asked != paper_value:
            record["deviations"].append(f"{key} {asked!r} (set by the user; paper recipe: {paper_value!r})")
    if resumed:
        record["resume_rule"] = EXTEND_RULE
    return record


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> Path:
    """Create ``run_dir``; refuse one that holds a run unless resuming or overwriting (then drop its checkpoint).

    Raises:
        RunExistsError: When ``run_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set.
        OutputFolderError: When ``run_dir`` (or a parent) is a file.
    """
    check_output_folder(run_dir)
    held = [name for name in (CHECKPOINT, "model", "unet") if (run_dir / name).exists()]
    if held and not (resume or overwrite):
        raise RunExistsError(f"{run_dir} already holds a run ({', '.join(held)}): pass --resume to continue it, "
                             "--overwrite to replace it, or choose another --out")
    if held and overwrite and not resume:
        (run_dir / CHECKPOINT).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


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
        TrainingDataError: ``views`` is not "auto", "device" or "workers", or is "device" for a method whose views
            are its own (dira, magical, chaitanya-*, spark): those are drawn by the workers, never silently instead.
    """
    check_views(views)
    recipe = recipe_for(method)
    if views == "device" and recipe is None:
        raise TrainingDataError(f"{method.name} draws its own views in the data-loader workers; --views device "
                                "applies to moco-v2, simclr, byol, swav and barlow-twins: use --views auto or workers")
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

    A U-Net folder gives its encoder; a run folder of the same method (with its ``checkpoint.pt``) gives
    the method's whole state (DiRA's dir run for the dira stage, as the reference's strict load).

    Raises:
        ModelFolderError: When the folder's backbone architecture is not the method's.
    """
    if (Path(init) / CHECKPOINT).is_file():
        load_run_state(method, Path(init))
        return
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


def load_run_state(method: Method, run_dir: Path) -> None:
    """The whole state of an earlier run of the same method and architecture (strict).

    Raises:
        ModelFolderError: When the run was of another method or architecture.
    """
    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    made = state.get("signature", {})
    if (made.get("method"), made.get("arch")) != (method.name, method.settings.arch):
        raise ModelFolderError(f"{run_dir} is a {made.get('method')} {made.get('arch')} run, this one trains "
                               f"{method.name} {method.settings.arch}: pass --init {run_dir}/model for its backbone")
    try:
        method.load_state_dict(state["method"], strict=True)
    except RuntimeError:  # shapes differ: the runs were built with other options
        raise ModelFolderError(f"{run_dir} was built with other method options ({made.get('options')}): "
                               f"pass the same -o options, or --init {run_dir}/model for its backbone") from None
