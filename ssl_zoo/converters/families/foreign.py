"""SimCLR v1/v2 (TensorFlow 1 variable names) and BYOL (Haiku module names) onto torchvision ResNet-50.

Both rules are pure functions of the name → tensor
mapping the reader returns; which layers need TensorFlow's "SAME" padding is ``architectures.tf_same``'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import torch

from ...errors import ConversionError
from ..rules import Report, Tensors
from . import Family

RESNET50_BLOCKS: Final = (3, 4, 6, 3)
_BN_FIELDS: Final = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                     "moving_variance": "running_var", "scale": "weight", "offset": "bias",
                     "mean_ema": "running_mean", "var_ema": "running_var"}


def tf_creation_order(blocks: tuple[int, ...] = RESNET50_BLOCKS) -> list[tuple[str, str]]:
    """(conv, batch norm) torchvision prefixes in the order SimCLR's ``resnet.py`` created its layers.

    TF names layers ``conv2d``, ``conv2d_1``, … by creation, and SimCLR creates a block's projection shortcut
    before its three convolutions, so index 1 is ``layer1.0.downsample``, 2-4 are ``layer1.0.conv1-3``.
    """
    order = [("conv1", "bn1")]
    for group, count in enumerate(blocks, start=1):
        for block in range(count):
            if block == 0:
                order.append((f"layer{group}.0.downsample.0", f"layer{group}.0.downsample.1"))
            order += [(f"layer{group}.{block}.conv{k}", f"layer{group}.{block}.bn{k}") for k in (1, 2, 3)]
    return order


def hwio_to_oihw(kernel: torch.Tensor) -> torch.Tensor:
    """A TensorFlow/Haiku convolution kernel (height, width, in, out) in torch's (out, in, height, width)."""
    return kernel.permute(3, 2, 0, 1).contiguous()


@dataclass(frozen=True)
class TfCreationOrder:
    """Map ``<scope>conv2d[_N]/kernel`` and ``<scope>batch_normalization[_N]/*`` by the integer ``N``.

    ``tf.train.list_variables`` sorts names as strings (``conv2d_10`` before ``conv2d_2``), so only the
    integer suffix says which layer a variable is. Everything outside ``scope`` (``global_step``, the heads,
    an ``ema_model/`` copy) and every ``/Momentum`` slot is dropped and counted.
    """

    scope: str = "base_model/"

    def apply(self, tensors: Tensors, classifier: str, report: Report) -> Tensors:
        pattern = re.compile(rf"^{re.escape(self.scope)}(conv2d|batch_normalization)(?:_(\d+))?/(\w+)$")
        order = tf_creation_order()
        out: Tensors = {}
        for name, value in tensors.items():
            match = pattern.match(name)
            if not match:
                report.drop(_tf_drop_reason(name, self.scope), 1)
                continue
            layer, index, field = match[1], int(match[2] or 0), match[3]
            if index >= len(order):
                raise ConversionError(f"{name}: layer index {index} is beyond ResNet-50's {len(order)} layers; "
                                      "this is not an r50 1x sk0 checkpoint (wider or SK models are not supported)")
            out[_tf_key(order[index], layer, field, name)] = hwio_to_oihw(value) if layer == "conv2d" else value
        if not out:
            raise ConversionError(f"no variable under {self.scope!r}: this is not a SimCLR TF1 checkpoint; "
                                  "check the file with `ssl-zoo info NAME`")
        report.steps.append(f"mapped {len(out)} variables under {self.scope!r} by their creation-order suffix; "
                            "kernels HWIO -> OIHW")
        return out

    def describe(self) -> str:
        return (f"keep {self.scope}conv2d_N / batch_normalization_N, map N in creation order (shortcut first), "
                "kernels HWIO -> OIHW; drop /Momentum, global_step, head_*, ema_model/")


def _tf_key(prefixes: tuple[str, str], layer: str, field: str, name: str) -> str:
    if layer == "conv2d" and field == "kernel":
        return f"{prefixes[0]}.weight"
    if layer == "batch_normalization" and field in ("gamma", "beta", "moving_mean", "moving_variance"):
        return f"{prefixes[1]}.{_BN_FIELDS[field]}"
    raise ConversionError(f"{name}: unexpected variable (a conv has only a kernel, a batch norm gamma, beta and "
                          "moving statistics); this is not a SimCLR ResNet-50 checkpoint")


def _tf_drop_reason(name: str, scope: str) -> str:
    if name.endswith("/Momentum"):
        return "(optimizer /Momentum slots)"
    if name.startswith("ema_model/"):
        return "(ema_model/ copy: the base_model/ copy is converted)"
    if name.startswith("head_"):
        return "(projection / supervised heads)"
    return "(global_step and other non-backbone variables)" if not name.startswith(scope) else "(not a layer)"


_HAIKU_BLOCK: Final = r"block_group_(?P<g>\d+)/~/block_(?P<b>\d+)/~/(?P<kind>conv|batchnorm|shortcut_conv|shortcut_batchnorm)(?:_(?P<k>\d+))?"


@dataclass(frozen=True)
class HaikuResNet:
    """Map Haiku ``ResNet50`` module names (``res_net50/~/block_group_G/~/block_B/~/conv_K``) onto torchvision.

    Parameters come from ``params`` (``w``, ``scale``, ``offset``), batch-norm statistics from ``state``
    (``mean_ema`` / ``var_ema`` ``average``); kernels HWIO → OIHW, Haiku's (1, 1, 1, C) vectors flattened.
    """

    params: str = "experiment_state/online_params/"
    state: str = "experiment_state/online_state/"
    module: str = "res_net50/~/"

    def apply(self, tensors: Tensors, classifier: str, report: Report) -> Tensors:
        param_re = re.compile(rf"^{re.escape(self.params + self.module)}(?P<path>.+)/(?P<field>w|scale|offset)$")
        state_re = re.compile(rf"^{re.escape(self.state + self.module)}(?P<path>.+)/~/(?P<field>mean_ema|var_ema)"
                              r"/average$")
        out: Tensors = {}
        for name, value in tensors.items():
            match = param_re.match(name) or state_re.match(name)
            if not match:
                report.drop(_haiku_drop_reason(name), 1)
                continue
            prefix, field = _haiku_prefix(match["path"], name), match["field"]
            out[f"{prefix}.{_BN_FIELDS.get(field, 'weight')}"] = (
                hwio_to_oihw(value) if field == "w" else value.reshape(-1))
        if not out:
            raise ConversionError(f"no {self.params}{self.module}* parameters: this is not a BYOL/Haiku ResNet-50 "
                                  "checkpoint; check the file with `ssl-zoo info NAME`")
        report.steps.append(f"mapped {len(out)} Haiku tensors of the online network by module name")
        return out

    def describe(self) -> str:
        return (f"keep {self.params}{self.module}* and the mean_ema/var_ema averages in {self.state}; "
                "rename Haiku modules to torchvision, kernels HWIO -> OIHW, (1,1,1,C) -> (C,)")


def _haiku_prefix(path: str, name: str) -> str:
    if path in ("initial_conv", "initial_batchnorm"):
        return "conv1" if path == "initial_conv" else "bn1"
    match = re.fullmatch(_HAIKU_BLOCK, path)
    if not match:
        raise ConversionError(f"{name}: unexpected Haiku module; this is not a Haiku ResNet-50 checkpoint")
    layer = f"layer{int(match['g']) + 1}.{int(match['b'])}"
    if match["kind"].startswith("shortcut"):
        return f"{layer}.downsample.{0 if match['kind'] == 'shortcut_conv' else 1}"
    number = int(match["k"] or 0) + 1
    return f"{layer}.{'conv' if match['kind'] == 'conv' else 'bn'}{number}"


def _haiku_drop_reason(name: str) -> str:
    for part, why in (("target_", "(target network)"), ("opt_state", "(optimizer state)"),
                      ("projector", "(projector / predictor)"), ("predictor", "(projector / predictor)"),
                      ("classifier", "(online linear classifier)")):
        if part in name:
            return why
    if name.endswith(("/hidden", "/counter")):
        return "(EMA hidden values and counters; the averages are used)"
    return "(step, rng and other non-backbone entries)"


FAMILIES = {
    "simclr": Family(
        name="simclr",
        rules=(TfCreationOrder("base_model/"),),
        summary=("base_model/ of a SimCLR TF1 checkpoint (the copy the released code and TF-Hub module evaluate; "
                 "an ema_model/ copy, where present, is not converted); heads and optimizer slots dropped"),
    ),
    "byol": Family(
        name="byol",
        rules=(HaikuResNet(),),
        summary="online network of BYOL's Haiku checkpoint (what the official linear evaluation reads); "
                "target network, projector, predictor, classifier and optimizer state dropped",
    ),
}
