"""The only place where select / strip / drop / rename is implemented.

A converter family is a tuple of these rules. ``apply_rules`` runs them as a pure function: the
checkpoint's top-level object in, a flat ``{torchvision key: tensor}`` dict and a report out.
Rules that look at the top-level object (``Unwrap``) come first; the others see the flat tensor dict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from ..errors import ConversionError

Tensors = dict[str, torch.Tensor]


@dataclass
class Report:
    """What the rules did, for the model card and ``ssl-zoo info``."""

    steps: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> number of keys
    ignored_values: list[str] = field(default_factory=list)  # non-tensor entries skipped

    def drop(self, reason: str, count: int) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count


@dataclass(frozen=True)
class Unwrap:
    """Descend into the first of ``keys`` that holds a dict (``state_dict``, ``model``, ``module``).

    Tolerant by design: a file that is already the inner dict passes through unchanged.
    """

    keys: tuple[str, ...]

    def unwrap(self, obj: Any, report: Report) -> Any:
        for key in self.keys:
            if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
                report.steps.append(f"took the {key!r} entry of the checkpoint")
                return obj[key]
        return obj

    def describe(self) -> str:
        return f"take the first of {list(self.keys)} when present"


@dataclass(frozen=True)
class KeepPrefix:
    """Keep only the keys under ``prefix`` and strip it; every other key is dropped.

    With ``if_present`` the rule does nothing when no key has the prefix (one family, two layouts).
    """

    prefix: str
    if_present: bool = False

    def apply(self, tensors: Tensors, classifier: str, report: Report) -> Tensors:
        kept = {k[len(self.prefix):]: v for k, v in tensors.items() if k.startswith(self.prefix)}
        if not kept and self.if_present:
            return tensors
        if not kept:
            sample = ", ".join(sorted(tensors)[:3])
            raise ConversionError(
                f"no key starts with {self.prefix!r} (found e.g. {sample}): "
                "this file is not the layout this entry expects; check the entry with `ssl-zoo info NAME`"
            )
        report.drop(f"outside {self.prefix}", len(tensors) - len(kept))
        report.steps.append(f"kept keys under {self.prefix!r} and stripped it")
        return kept

    def describe(self) -> str:
        return f"keep keys under {self.prefix!r} and strip it" + (" (when present)" if self.if_present else "")


@dataclass(frozen=True)
class DropPrefixes:
    """Drop keys that start with any of ``prefixes`` (exact prefixes, never substrings)."""

    prefixes: tuple[str, ...]

    def apply(self, tensors: Tensors, classifier: str, report: Report) -> Tensors:
        kept = {k: v for k, v in tensors.items() if not k.startswith(self.prefixes)}
        report.drop(f"under {', '.join(self.prefixes)}", len(tensors) - len(kept))
        return kept

    def describe(self) -> str:
        return f"drop {list(self.prefixes)}"


@dataclass(frozen=True)
class DropHead:
    """Drop the architecture's classifier (``fc.`` for ResNets, ``classifier.`` for DenseNets)."""

    def apply(self, tensors: Tensors, classifier: str, report: Report) -> Tensors:
        return DropPrefixes((classifier + ".",)).apply(tensors, classifier, report)

    def describe(self) -> str:
        return "drop the classifier head"


@dataclass(frozen=True)
class RenameRegex:
    """Rename keys matching ``pattern`` with ``re.sub`` and ``replacement``."""

    pattern: str
    replacement: str
    why: str = ""

    def apply(self, tensors: Tensors, classifier: str, report: Report) -> Tensors:
        regex = re.compile(self.pattern)
        renamed = {regex.sub(self.replacement, k): v for k, v in tensors.items()}
        count = sum(1 for k in tensors if regex.search(k))
        if count:
            report.steps.append(f"renamed {count} keys ({self.why or self.pattern})")
        return renamed

    def describe(self) -> str:
        return f"rename {self.pattern!r} -> {self.replacement!r}" + (f" ({self.why})" if self.why else "")


def flatten_tensors(obj: Any, report: Report) -> Tensors:
    """The tensor entries of a state dict; non-tensor values (configs, counters) are skipped and listed."""
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"expected a dict of tensors, found {type(obj).__name__}: this is not a state-dict checkpoint"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ConversionError(
            f"no tensors at the level this family reads (keys: {sorted(map(str, obj))[:5]}): "
            "this file is not the layout this entry expects; check the entry with `ssl-zoo info NAME`"
        )
    report.ignored_values.extend(sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)))
    return tensors


def apply_rules(obj: Any, rules: tuple[Any, ...], classifier: str) -> tuple[Tensors, Report]:
    """Run a family's rules on a checkpoint's top-level object.

    Args:
        obj: What the reader returned (a dict, maybe wrapping the state dict).
        rules: The family's rules, ``Unwrap`` ones first.
        classifier: The target architecture's classifier prefix (``"fc"`` or ``"classifier"``).

    Returns:
        The flat tensor dict under target key names, and a report of what was done.

    Raises:
        ConversionError: When the object is not a state dict or a required prefix is absent.
    """
    report = Report()
    for rule in rules:
        if isinstance(rule, Unwrap):
            obj = rule.unwrap(obj, report)
    tensors = flatten_tensors(obj, report)
    for rule in rules:
        if not isinstance(rule, Unwrap):
            tensors = rule.apply(tensors, classifier, report)
    return tensors, report
