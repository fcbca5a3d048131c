"""The checkpoint stand-ins in ``tests.fixtures`` match the documented upstream formats.

The expectations below are written from the upstream layouts (section marks § as in ``fixtures/layouts.py``),
independently of the builders, so a builder that drifts from the reference fails here.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import timm
import torch

from ssl_zoo.registry import get_entry, list_models
from tests.fixtures import VARIANTS, Fixture, build, trunk_shapes

# First bytes of a ``_use_new_zipfile_serialization=False`` file: pickle protocol 2 + the magic number (§1.1).
LEGACY_MAGIC = bytes.fromhex("80028a0a6cfc9c46f9206aa8")
MAX_SMALL_BYTES = 2_000_000
FULL_SIZE_MIN_BYTES = 90_000_000


@dataclass(frozen=True)
class Expect:
    """What the reference says one upstream file looks like.

    Attributes:
        container: "zip" or "legacy".
        top: The exact top-level keys, or None for a flat state dict.
        state_key: Where the state dict lives (None: the file itself).
        tensors: Number of tensor entries in that state dict.
        prefix: Prefix of the trunk keys inside the state dict.
        shapes: Some documented keys (with the prefix) and their shapes; shape None means "must be absent".
    """

    container: str
    top: frozenset[str] | None
    state_key: str | None
    tensors: int
    prefix: str = ""
    shapes: dict[str, tuple[int, ...] | None] = field(default_factory=dict)


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


def _moco_expectations(name: str, mlp: bool, queue: int) -> dict[tuple[str, str], Expect]:
    """MoCo v1/v2 (§5.1) and PCL (§6): ``state_dict`` of ``module.encoder_q.*``; 642/646 keys uncleaned."""
    head = {"module.encoder_q.fc.0.weight": (2048, 2048), "module.encoder_q.fc.2.weight": (128, 2048)} if mlp \
        else {"module.encoder_q.fc.weight": (128, 2048), "module.encoder_q.fc.bias": (128,)}
    with_head = 322 if mlp else 320  # fc.{0,2}.{weight,bias} or fc.{weight,bias}
    meta = _keys("epoch", "arch", "state_dict")
    prefix = "module.encoder_q."
    return {
        (name, "default"): Expect("legacy", meta, "state_dict", with_head, prefix, head),
        (name, "no-fc"): Expect("legacy", meta, "state_dict", 318, prefix, {k: None for k in head}),
        (name, "state-dict-only"): Expect("legacy", _keys("state_dict"), "state_dict", with_head, prefix, head),
        (name, "with-key-encoder"): Expect(
            "legacy", meta | {"optimizer"}, "state_dict", 642 if not mlp else 646, prefix,
            {"module.queue": (128, queue), "module.queue_ptr": (1,), "module.encoder_k.conv1.weight": (64, 3, 7, 7)},
        ),
    }


SWAV_HEAD = {
    "module.projection_head.0.weight": (2048, 2048),
    "module.projection_head.1.running_var": (2048,),
    "module.projection_head.3.weight": (128, 2048),
}
SINGLE_PROTOTYPES = {**SWAV_HEAD, "module.prototypes.weight": (3000, 128)}
MULTI_PROTOTYPES = {**SWAV_HEAD, **{f"module.prototypes.prototypes{i}.weight": (3000, 128) for i in range(3)}}
PYCONTRAST_TRAINING = _keys("model", "contrast", "optimizer", "epoch")
SPARK_DECODER = {
    "sparse_encoder.sp_cnn.conv1.weight": (64, 3, 7, 7),
    "dense_decoder.dec.0.up_sample.weight": (768, 768, 4, 4),
    "dense_decoder.proj.weight": (3, 24, 1, 1),
    "densify_projs.0.weight": (768, 2048, 1, 1),
    "mask_tokens.3": (1, 256, 1, 1),
    "norm_black": (1, 3, 224, 224),
}
SPARK_META = _keys("args", "arch", "epoch", "performance_desc", "module", "optimizer")
PL10_META = _keys("epoch", "global_step", "pytorch-lightning_version", "callbacks", "optimizer_states",
                  "lr_schedulers", "state_dict")
PL16_META = PL10_META | {"loops", "hparams_name", "hyper_parameters"}
# §8-§9: MoCo-CXR (DDP MoCo with --mlp, queue 24576), CovidPrognosis (PL 1.0, model.-prefixed MoCo, one-Linear
# head, queue 65536, metric states), Wolf et al. (PL 1.6 bolts modules).
MEDICAL_EXPECTATIONS: dict[tuple[str, str], Expect] = {
    **{(name, variant): Expect("legacy", _keys("epoch", "arch", "state_dict", "optimizer"), "state_dict",
                               count if variant == "query-only" else 2 * count + 2, "module.encoder_q.",
                               {**head, **({} if variant == "query-only" else {"module.queue": (128, 24576)})})
       for name, count, head in (
           ("moco-cxr-r18", 124, {"module.encoder_q.fc.0.weight": (512, 512), "module.encoder_q.fc.2.weight": (128, 512)}),
           ("moco-cxr-d121", 729, {"module.encoder_q.classifier.0.weight": (1024, 1024),
                                   "module.encoder_q.classifier.2.weight": (128, 1024)}))
       for variant in ("default", "query-only")},
    **{(f"mimic-chexpert-lr-{lr}", variant): Expect("zip", PL10_META, "state_dict", 1460, "model.encoder_q.", {
        "model.encoder_q.classifier.weight": (128, 1024), "model.encoder_q.classifier.0.weight": None,
        "model.queue": (128, 65536), "model.encoder_k.features.conv0.weight": (64, 3, 7, 7), "train_acc.total": ()})
       for lr, variant in (("0.01", "default"), ("0.01", "string-callbacks"), ("0.1", "default"), ("1.0", "default"))},
    ("lidc-byol", "default"): Expect("zip", PL16_META, "state_dict", 660, "online_network.encoder.", {
        "online_network.projector.model.0.weight": (4096, 2048), "online_network.projector.model.0.bias": None,
        "online_network.projector.model.3.weight": (256, 4096), "online_network.predictor.model.0.weight": (4096, 256),
        "target_network.encoder.conv1.weight": (64, 3, 7, 7)}),
    **{("lidc-swav", variant): Expect("zip", PL16_META, "state_dict", 328, "model.", {
        "model.projection_head.0.weight": (2048, 2048), "model.projection_head.3.weight": (128, 2048),
        "model.prototypes.weight": (k, 128)}) for variant, k in (("default", 3000), ("500-prototypes", 500))},
    ("lidc-moco-v2", "default"): Expect("zip", PL16_META, "state_dict", 648, "encoder_q.", {
        "encoder_q.fc.0.weight": (2048, 2048), "encoder_q.fc.2.weight": (128, 2048), "val_queue": (128, 65536)}),
    ("lidc-moco-v2", "linear-head"): Expect("zip", PL16_META, "state_dict", 644, "encoder_q.", {
        "encoder_q.fc.weight": (128, 2048), "encoder_q.fc.0.weight": None, "queue": (128, 65536)}),
    ("lidc-spark", "default"): Expect("zip", _keys("arch", "module", "is_pretrain"), "module", 318),
}
# §10, §12, methods §A.2: smp U-Nets (380 keys for ResNet-50) and the 106-key UNet3D.
UNET_HEAD = {"decoder.blocks.0.conv1.0.weight": (256, 3072, 3, 3), "decoder.blocks.4.conv2.0.weight": (16, 16, 3, 3)}
UNET_EXPECTATIONS: dict[tuple[str, str], Expect] = {
    ("dira", "default"): Expect("zip", None, None, 380, "", {**UNET_HEAD, "segmentation_head.0.weight": (1, 16, 3, 3)}),
    ("dira", "checkpoint"): Expect("zip", _keys("epoch", "arch", "state_dict", "optimizer", "best_loss"), "state_dict",
                                   766, "module.encoder_q.backbone.", {
                                       "module.encoder_q.fc.0.weight": (2048, 2048), "module.queue": (128, 65536),
                                       "module.encoder_k.backbone.segmentation_head.0.bias": (1,)}),
    ("magical", "default"): Expect("zip", _keys("epoch", "state_dict", "optimizer_state_dict"), "state_dict", 384,
                                   "module.", {"module.projection_head.0.weight": (2048, 2048),
                                               "module.projection_head.2.weight": (128, 2048),
                                               "module.segmentation_head.0.weight": (1, 16, 3, 3)}),
    ("magical", "medmnist"): Expect("zip", _keys("epoch", "state_dict", "optimizer_state_dict"), "state_dict", 384,
                                    "", {"segmentation_head.0.weight": (3, 16, 3, 3)}),
    **{("models-genesis", variant): Expect("legacy", top, "state_dict", 106, "module.", {
        "module.down_tr64.ops.0.conv1.weight": (32, 1, 3, 3, 3), "module.down_tr512.ops.1.conv1.weight": (512, 256, 3, 3, 3),
        "module.up_tr256.up_conv.weight": (512, 512, 2, 2, 2), "module.up_tr256.ops.0.conv1.weight": (256, 768, 3, 3, 3),
        "module.out_tr.final_conv.weight": (1, 64, 1, 1, 1)})
       for variant, top in (("default", _keys("epoch", "state_dict", "optimizer_state_dict")),
                            ("state-dict-only", _keys("state_dict")))},
}

EXPECTATIONS: dict[tuple[str, str], Expect] = {
    # §2: 2017 tensors re-saved as zip, no num_batches_tracked; densenet legacy names and likely legacy pickle.
    ("supervised-r50", "default"): Expect("zip", None, None, 267, shapes={"fc.weight": (1000, 2048)}),
    ("supervised-r50", "with-nbt"): Expect("zip", None, None, 320, shapes={"bn1.num_batches_tracked": ()}),
    ("supervised-r18", "default"): Expect("zip", None, None, 102, shapes={"fc.weight": (1000, 512)}),
    ("supervised-d121", "default"): Expect("legacy", None, None, 606, shapes={
        "features.denseblock1.denselayer1.norm.1.weight": (64,),
        "features.denseblock4.denselayer16.conv.2.weight": (32, 128, 3, 3),
        "features.denseblock1.denselayer1.norm1.weight": None,
        "classifier.weight": (1000, 1024)}),
    ("supervised-d121", "zip"): Expect("zip", None, None, 606, shapes={"classifier.weight": (1000, 1024)}),
    # §3: bare backbone.
    ("barlow-twins", "default"): Expect("zip", None, None, 318, shapes={"fc.weight": None}),
    # §4: flat module.-prefixed dict with projection head and prototypes.
    ("swav", "default"): Expect("legacy", None, None, 328, "module.", SINGLE_PROTOTYPES),
    ("swav", "state-dict"): Expect("legacy", _keys("state_dict"), "state_dict", 328, "module.", SINGLE_PROTOTYPES),
    ("deepcluster-v2", "default"): Expect("legacy", None, None, 330, "module.", MULTI_PROTOTYPES),
    ("sela-v2", "default"): Expect("legacy", None, None, 328, "module.", SINGLE_PROTOTYPES),
    ("sela-v2", "multi-prototypes"): Expect("legacy", None, None, 330, "module.", MULTI_PROTOTYPES),
    **_moco_expectations("moco-v1", mlp=False, queue=65536),
    **_moco_expectations("moco-v2", mlp=True, queue=65536),
    **_moco_expectations("pcl-v1", mlp=False, queue=16384),
    **_moco_expectations("pcl-v2", mlp=True, queue=16384),
    # §5.2: 663 keys; fc.4 is an affine-free BatchNorm1d.
    **{("moco-v3", variant): Expect("zip", top, "state_dict", 663, "module.base_encoder.", {
        "module.base_encoder.fc.0.weight": (4096, 2048),
        "module.base_encoder.fc.4.running_mean": (256,),
        "module.base_encoder.fc.4.weight": None,
        "module.momentum_encoder.fc.3.weight": (256, 4096),
        "module.predictor.0.weight": (4096, 256),
        "module.predictor.3.weight": (256, 4096)})
       for variant, top in (("default", _keys("epoch", "arch", "state_dict")),
                            ("with-optimizer", _keys("epoch", "arch", "state_dict", "optimizer", "scaler")))},
    # §7: model = module.encoder.* + module.head.* (+ module.head_jig.* for the jigsaw methods).
    **{(name, variant): Expect("legacy", top, "model", count, "module.encoder.", heads)
       for name, count, heads in (
           ("insdis", 320, {"module.head.0.weight": (128, 2048), "module.head_jig.fc1.weight": None}),
           ("pirl", 324, {"module.head_jig.fc1.weight": (128, 2048), "module.head_jig.fc2.weight": (128, 1152)}),
           ("infomin", 328, {"module.head.2.weight": (128, 2048), "module.head_jig.fc1.0.weight": (2048, 2048),
                             "module.head_jig.fc2.weight": (128, 1152)}))
       for variant, top in (("default", _keys("model", "epoch")), ("model-only", _keys("model")),
                            ("with-training-state",
                             PYCONTRAST_TRAINING | ({"model_ema"} if name == "infomin" else set())))},
    # §11: flat timm-style trunk, the {'arch','module','is_pretrain'} wrapper, or the with-decoder checkpoint.
    ("spark", "default"): Expect("zip", None, None, 318),
    ("spark", "module"): Expect("zip", _keys("arch", "module", "is_pretrain"), "module", 318),
    ("spark", "with-decoder"): Expect("zip", SPARK_META | {"input_size", "is_pretrain"}, "module", 425,
                                      "sparse_encoder.sp_cnn.", SPARK_DECODER),
    ("spark", "with-decoder-old"): Expect("zip", SPARK_META, "module", 425, "sparse_encoder.sp_cnn.", SPARK_DECODER),
    **MEDICAL_EXPECTATIONS,
    **UNET_EXPECTATIONS,
}

NON_TIMM_STEMS = {"unet-resnet50": "encoder.conv1.weight", "unet3d": "down_tr64.ops.0.conv1.weight"}

# TF checkpoints and the Haiku pickle are not torch.save files: tests/test_foreign.py checks those fixtures.
CASES = [(name, variant) for name, variants in VARIANTS.items() for variant in variants
         if get_entry(name).format == "torch"]

# The documented DenseNet rename (§2), written out here to check the fixture's ``expected`` independently.
LEGACY_DENSE = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


@dataclass(frozen=True)
class Built:
    """One built fixture, what ``torch.load(weights_only=True)`` returns for it, and the reference's expectations."""

    fixture: Fixture
    loaded: Any
    expect: Expect

    @property
    def state(self) -> dict[str, Any]:
        """The state dict inside the loaded file."""
        return self.loaded if self.expect.state_key is None else self.loaded[self.expect.state_key]


@pytest.fixture(scope="session", params=CASES, ids=[f"{n}-{v}" for n, v in CASES])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Each (name, variant) built once per session.

    A parametrized session fixture makes pytest run all tests of one case together and drop the case before the
    next, so only one ``expected`` (~100 MB of contiguous float32 for ResNet-50) is alive at a time.
    """
    name, variant = request.param
    fixture = build(name, tmp_path_factory.mktemp(f"{name}-{variant}"), variant)
    return Built(fixture, _load(fixture.path), EXPECTATIONS[name, variant])


def _load(path: Path) -> Any:
    """``weights_only=True``, or ssl_zoo's restricted reader for a Lightning file whose callbacks are keyed by class
    (§8.2: ``weights_only=True`` refuses those)."""
    import pickle

    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        from ssl_zoo.converters.readers import read_checkpoint

        return read_checkpoint(path)


@pytest.fixture(scope="session")
def timm_model() -> Callable[[str], torch.nn.Module]:
    """One headless timm model per architecture, reused by every strict-load check."""
    models: dict[str, torch.nn.Module] = {}

    def get(arch: str) -> torch.nn.Module:
        if arch not in models:
            models[arch] = timm.create_model(arch, pretrained=False, num_classes=0)
        return models[arch]

    return get


def test_every_registry_entry_has_fixtures() -> None:
    assert set(VARIANTS) == set(list_models())
    assert all(variants[0] == "default" for variants in VARIANTS.values())
    assert set(CASES) == set(EXPECTATIONS)


def test_container_and_size(built: Built) -> None:
    fixture = built.fixture
    assert fixture.path == fixture.path.parent.parent / fixture.name / get_entry(fixture.name).checkpoint.filename
    is_zip = zipfile.is_zipfile(fixture.path)
    assert ("zip" if is_zip else "legacy") == built.expect.container
    if not is_zip:
        assert fixture.path.read_bytes()[: len(LEGACY_MAGIC)] == LEGACY_MAGIC
    assert fixture.path.stat().st_size < MAX_SMALL_BYTES


def test_top_level_and_state_keys(built: Built) -> None:
    expect = built.expect
    assert isinstance(built.loaded, dict)
    if expect.top is not None:
        assert set(built.loaded) == expect.top
    state = built.state
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    assert len(tensors) == expect.tensors
    if expect.state_key is None:
        assert len(tensors) == len(state), "a flat state dict holds tensors only"
    for key, shape in expect.shapes.items():
        if shape is None:
            assert key not in state
        else:
            assert tuple(state[key].shape) == shape, key
    arch = get_entry(built.fixture.name).arch
    stem = NON_TIMM_STEMS.get(arch) or next(iter(trunk_shapes(arch)))  # conv1.weight / features.conv0.weight
    assert expect.prefix + stem in tensors


def test_expected_loads_strictly_into_timm(built: Built, timm_model) -> None:
    expected = built.fixture.expected
    arch = get_entry(built.fixture.name).arch
    model = non_timm_model(arch, expected) if arch in NON_TIMM_STEMS else timm_model(arch)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()} if arch in NON_TIMM_STEMS \
        else trunk_shapes(arch)
    assert set(expected) == set(shapes)
    for key, value in expected.items():
        assert tuple(value.shape) == shapes[key], key
        assert value.dtype == (torch.int64 if key.endswith("num_batches_tracked") else torch.float32), key
        assert value.is_contiguous(), key
    model.load_state_dict(expected, strict=True)


def non_timm_model(arch: str, expected: dict[str, torch.Tensor]) -> torch.nn.Module:
    """smp's own U-Net (with the file's class count) or ssl_zoo's UNet3D (the fixture's shapes come from the
    reference's table, so this also checks the module against it)."""
    if arch == "unet3d":
        from ssl_zoo.architectures.unet3d import UNet3D

        return UNet3D()
    import segmentation_models_pytorch as smp

    return smp.Unet("resnet50", encoder_weights=None, classes=expected["segmentation_head.0.weight"].shape[0])


def test_expected_equals_file_values(built: Built) -> None:
    """``expected`` is the file's trunk after the documented prefix strip / DenseNet rename; absent nbt are 0."""
    prefix = built.expect.prefix
    trunk = {
        LEGACY_DENSE.sub(r"\1\2", key[len(prefix):]): value
        for key, value in built.state.items()
        if key.startswith(prefix) and isinstance(value, torch.Tensor)
    }
    for key, value in built.fixture.expected.items():
        if key in trunk:
            assert torch.equal(value, trunk[key]), key  # contiguous operand first: much faster
        else:
            assert key.endswith("num_batches_tracked") and value.item() == 0, key


def test_values_reveal_transposes(built: Built) -> None:
    """Every float tensor varies with position: swapping two equal-length dims changes it (§15).

    Checked on the leading 8-wide block of each tensor: a block that changes proves the whole tensor does.
    """
    for key, value in built.fixture.expected.items():
        if not value.is_floating_point() or value.numel() < 2:
            continue
        block = value[tuple(slice(0, 8) for _ in range(value.ndim))]
        assert block.unique().numel() > 1, f"{key} is constant"
        for a in range(value.ndim):
            for b in range(a + 1, value.ndim):
                if value.shape[a] == value.shape[b] > 1:
                    assert not torch.equal(block, block.transpose(a, b)), f"{key}: dims {a},{b}"


@pytest.fixture(scope="session")
def full_size_moco_v2(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    """The real-size moco-v2 file (~112 MB), written once per session."""
    return build("moco-v2", tmp_path_factory.mktemp("full-size"), full_size=True)


def test_full_size_is_real_size(full_size_moco_v2: Fixture, timm_model) -> None:
    assert full_size_moco_v2.path.stat().st_size > FULL_SIZE_MIN_BYTES
    assert not zipfile.is_zipfile(full_size_moco_v2.path)
    timm_model("resnet50").load_state_dict(full_size_moco_v2.expected, strict=True)


def test_builds_are_reproducible(tmp_path: Path) -> None:
    first = build("supervised-r18", tmp_path / "a")
    again = build("supervised-r18", tmp_path / "b")
    assert all(torch.equal(first.expected[k], again.expected[k]) for k in first.expected)


def test_unknown_variant_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        build("swav", tmp_path, "no-such-variant")
