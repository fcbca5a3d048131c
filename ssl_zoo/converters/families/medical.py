"""Medical-imaging checkpoints: PyTorch Lightning files of chest X-ray and CT models.

MoCo-CXR files have MoCo's own layout and use the ``moco`` family; SparK on CT uses ``spark``.
"""

from ..rules import DropHead, DropPrefixes, KeepPrefix, Unwrap
from . import Family

FAMILIES = {
    # CovidPrognosis: a PL 1.0 checkpoint whose LightningModule holds the MoCo wrapper as `self.model`;
    # `callbacks` keyed by class objects is the reader's business, metric states fall outside the prefix.
    "lightning-moco": Family(
        name="lightning-moco",
        rules=(Unwrap(("state_dict",)), KeepPrefix("model.encoder_q."), DropHead()),
        summary="query encoder (model.encoder_q.) of a Lightning MoCo checkpoint; head, key encoder, queue dropped",
    ),
    # Wolf et al.: pl_bolts modules saved by PL 1.6, no `module.` prefix.
    "lidc-byol": Family(
        name="lidc-byol",
        rules=(Unwrap(("state_dict",)), KeepPrefix("online_network.encoder.")),
        summary="online encoder of a Lightning BYOL checkpoint; projector, predictor and target network dropped",
    ),
    "lidc-swav": Family(
        name="lidc-swav",
        rules=(Unwrap(("state_dict",)), KeepPrefix("model."), DropPrefixes(("projection_head.", "prototypes."))),
        summary="trunk (model.) of a Lightning SwAV checkpoint; projection head and prototypes dropped",
    ),
    # The head is a Linear or an MLP (UNCONFIRMED which); DropHead removes either.
    "lidc-moco": Family(
        name="lidc-moco",
        rules=(Unwrap(("state_dict",)), KeepPrefix("encoder_q."), DropHead()),
        summary="query encoder (encoder_q.) of a Lightning MoCo v2 checkpoint; head, key encoder and queues dropped",
    ),
}
FAMILIES.update({
    # DiRA: the flat smp U-Net file passes through; checkpoint.pth keeps it under module.encoder_q.backbone.
    "dira": Family(
        name="dira",
        rules=(Unwrap(("state_dict",)), KeepPrefix("module.encoder_q.backbone.", if_present=True)),
        summary="segmentation_models_pytorch U-Net (encoder, decoder, head); MoCo head, key encoder and queue dropped",
    ),
    # MAGICAL/TOWER: the U-Net plus a projection head, under `module.` when saved from DataParallel.
    "magical": Family(
        name="magical",
        rules=(Unwrap(("state_dict",)), KeepPrefix("module.", if_present=True), DropPrefixes(("projection_head.",))),
        summary="segmentation_models_pytorch U-Net (encoder, decoder, head); projection head dropped",
    ),
    # Models Genesis: DataParallel(UNet3D) under `state_dict`.
    "models-genesis": Family(
        name="models-genesis",
        rules=(Unwrap(("state_dict",)), KeepPrefix("module.", if_present=True)),
        summary="the whole UNet3D (encoder down_tr*, decoder up_tr*, output out_tr)",
    ),
})
