"""Self-supervised pre-training: thin method modules on one training loop, whose output is a model folder.

``pretrain(method, data, out, ...)`` is the entry point (``ssl-zoo pretrain`` on the command line).

Layout (one job per module):

```
base.py         the Method interface and the table of methods by name
recipes.py      each method's paper recipe and the named presets (data: presets.toml)
optim.py        optimisers (LARS/LAMB from timm), parameter groups, lr / weight-decay / EMA schedules
losses.py       each objective as a small pure function
parts.py        backbones, U-Nets, heads, EMA, DDP gathers, shuffle-BN
augment.py      the generic view pipelines per sample on the CPU;  medical_augment.py  MAGICAL / DiRA / Chaitanya views
views.py        view recipes (views.toml) and their batched on-device path (kornia)
contrastive.py  moco-v2, simclr, byol, swav, barlow-twins
dira.py  magical.py  chaitanya.py  spark.py
data.py         unlabelled images / arrays / NIfTI / DICOM through an intensity recipe, resumable order
loop.py         the training loop;  checkpoint.py  resumable state
monitor.py      validation split and loss, output selection, early stop;  probe.py  --monitor k-NN / linear
metrics.py      metrics.csv and TensorBoard event files (and Weights & Biases)
output.py       model folders and the training card;  pictures.py  the loss curve (optional matplotlib)
run.py          pretrain()
```
"""

from .base import METHOD_MODULES
from .run import pretrain

METHODS = tuple(METHOD_MODULES)

__all__ = ["METHODS", "pretrain"]
