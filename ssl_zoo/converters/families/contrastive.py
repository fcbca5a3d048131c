"""Contrastive, clustering and redundancy-reduction methods."""

from ..rules import DropHead, DropPrefixes, KeepPrefix, Unwrap
from . import Family

FAMILIES = {
    # MoCo v1/v2 and PCL: {"state_dict": {"module.encoder_q.*", maybe "module.encoder_k.*", "module.queue"}}.
    "moco": Family(
        name="moco",
        rules=(Unwrap(("state_dict",)), KeepPrefix("module.encoder_q."), DropHead()),
        summary="query encoder (module.encoder_q.) of a MoCo-style checkpoint; projection head dropped",
    ),
    # The official linear evaluation uses the base encoder, not the momentum encoder.
    "moco-v3": Family(
        name="moco-v3",
        rules=(Unwrap(("state_dict",)), KeepPrefix("module.base_encoder."), DropHead()),
        summary="base encoder (module.base_encoder.) of MoCo v3; projector, predictor, momentum encoder dropped",
    ),
    # SwAV, DeepCluster-v2, SeLa-v2: a flat `module.` dict (tolerating a state_dict wrapper).
    "swav": Family(
        name="swav",
        rules=(Unwrap(("state_dict",)), KeepPrefix("module."), DropPrefixes(("projection_head.", "prototypes."))),
        summary="trunk of a facebookresearch/swav checkpoint; projection head and prototypes dropped",
    ),
    # PyContrast (InsDis, PIRL, InfoMin): {"model": {"module.encoder.*", "module.head*"}}.
    "pycontrast": Family(
        name="pycontrast",
        rules=(Unwrap(("model",)), KeepPrefix("module.encoder.")),
        summary="encoder (module.encoder.) of a PyContrast checkpoint; heads and jigsaw branch dropped",
    ),
    # Barlow Twins' resnet50.pth already is the torchvision trunk.
    "barlow-twins": Family(
        name="barlow-twins",
        rules=(),
        summary="already a torchvision trunk state dict",
    ),
}
