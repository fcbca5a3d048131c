"""Self-supervised pre-training: thin method modules on one training loop, whose output is a model folder.

``pretrain(method, data, out, ...)`` is the entry point (``ssl-zoo pretrain`` on the command line).

Layout (one job per module):

```
base.py         the Method interface and the table of methods by name
losses.py       each objective as a small pure function
parts.py        backbones, U-Nets, heads, EMA, DDP gathers, shuffle-BN
augment.py      the methods' augmentations per sample on the CPU (torch RNG only), view recipes included
views.py        view recipes (views.toml) and their batched on-device path (kornia)
contrastive.py  moco-v2, simclr, byol, swav, barlow-twins
dira.py  magical.py  chaitanya.py  spark.py
data.py         unlabelled images / arrays / NIfTI / DICOM through an intensity recipe, resumable order
loop.py         the training loop;  checkpoint.py  resumable state
monitor.py      validation split and loss, output selection, early stop;  probe.py  --monitor k-NN / linear
metrics.py      metrics.csv and TensorBoard event files (and Weights & Biases)
output.py       model folders and the training card;  run.py  pretrain()
```
"""

from .base import METHOD_MODULES
from .run import pretrain

METHODS = tuple(METHOD_MODULES)

__all__ = ["METHODS", "pretrain"]
