"""Masked image modeling: SparK's ResNet checkpoints."""

from ..rules import KeepPrefix, Unwrap
from . import Family

FAMILIES = {
    # SparK ships a flat timm-style trunk, or {'arch', 'module', 'is_pretrain'}; the with-decoder file keeps the
    # encoder under `sparse_encoder.sp_cnn.` beside decoder tensors and a non-tensor `config`.
    "spark": Family(
        name="spark",
        rules=(Unwrap(("module",)), KeepPrefix("sparse_encoder.sp_cnn.", if_present=True)),
        summary="SparK ResNet encoder (sp_cnn); decoder, mask tokens and densify layers dropped",
    ),
}
