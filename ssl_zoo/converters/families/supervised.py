"""torchvision's supervised ImageNet weights."""

from ..rules import DropHead, RenameRegex
from . import Family

# The 2017 DenseNet files store `denselayerN.norm.1.weight`; torchvision renames them to `norm1` at load time
# with this pattern. It does not match modern names, so it is safe on every file.
DENSENET_LEGACY = r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"

FAMILIES = {
    "torchvision": Family(
        name="torchvision",
        rules=(RenameRegex(DENSENET_LEGACY, r"\1\2", why="legacy DenseNet names norm.1 -> norm1"), DropHead()),
        summary="flat torchvision state dict; classifier dropped",
    ),
}
