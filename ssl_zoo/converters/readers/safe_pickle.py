"""The restricted path for torch files that ``weights_only=True`` alone refuses.

Some real checkpoints name globals outside torch's default allow-list: PyTorch-Lightning 1.0-1.4 keys its
``callbacks`` dict by the callback *class*, training scripts save ``argparse.Namespace`` hyper-parameters, and
metrics are saved as numpy scalars. This module lists every global a file names by reading its pickle opcodes
(nothing in the file runs), checks each against :data:`ALLOW_LIST`, and gives each allowed one an inert
stand-in registered for ``torch.load(weights_only=True)``. Anything else is refused before loading starts.

Torch's weights-only unpickler stays the gatekeeper during the load: it resolves a global only through its
defaults and the stand-ins registered here, never by importing.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import fnmatch
import pickletools
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, ClassVar, Final, NamedTuple

import numpy as np
import torch

from ...errors import UnsafePickleError
from .numpy_plain import PLAIN_KINDS, plain_dtype, plain_scalar
from .pickle_limits import PickleBudget

__all__ = ["ALLOW_LIST", "AllowRule", "PickleScan", "PickleStub", "allowing", "scan_pickle", "stand_ins_for",
           "stub_class"]

StandIns = list[tuple[Any, str]]


class PickleStub:
    """An inert stand-in for a class or function that a checkpoint names and ssl_zoo never imports.

    Each stubbed global becomes its own subclass (see :func:`stub_class`); ``stub_of`` holds the dotted name
    from the file. A reference to the global (e.g. a ``callbacks`` dict key) is that class; rebuilding an
    instance from it gives a stub instance that only records data: ``args`` (what the constructor got) and
    ``state`` (what pickle's BUILD gave, usually the original ``__dict__``). Keys of a dict ``state`` also
    read as attributes, so a stubbed ``argparse.Namespace(lr=0.1)`` still answers ``ns.lr``.

    Example:
        >>> ns = stub_class("argparse.Namespace")()
        >>> ns.__setstate__({"lr": 0.1})
        >>> ns.lr, ns.stub_of
        (0.1, 'argparse.Namespace')
    """

    stub_of: ClassVar[str] = ""

    def __new__(cls, *args: Any) -> PickleStub:
        self = super().__new__(cls)
        self.args = args
        self.state = None
        return self

    def __init__(self, *args: Any) -> None:  # __new__ already kept the arguments
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get("state")
        if isinstance(state, dict) and name in state and not name.startswith("__"):
            return state[name]
        raise AttributeError(f"{type(self).__name__} stub has no attribute {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # copy.deepcopy(checkpoint) must not feed the recorded dict back into __setstate__
        return _restore_stub, (type(self), self.args, self.state)

    def __repr__(self) -> str:
        return f"<stub of {self.stub_of} args={self.args!r} state={self.state!r}>"


_STUB_CLASSES: dict[str, type[PickleStub]] = {}


def stub_class(name: str) -> type[PickleStub]:
    """Return the stub class that stands in for the global ``name`` (the same class for the same name).

    Args:
        name: The dotted global name as the checkpoint spells it.

    Returns:
        A :class:`PickleStub` subclass named like the original; its ``__module__`` starts with
        ``ssl_zoo.stubs.`` so it cannot be mistaken for, or pickled as, the real thing.

    Example:
        >>> stub_class("pytorch_lightning.callbacks.ModelCheckpoint").__name__
        'ModelCheckpoint'
    """
    if name not in _STUB_CLASSES:
        module, _, short = name.rpartition(".")
        attrs = {"stub_of": name, "__module__": f"ssl_zoo.stubs.{module}", "__qualname__": short}
        _STUB_CLASSES.setdefault(name, type(short, (PickleStub,), attrs))  # setdefault: one class per name
    return _STUB_CLASSES[name]


def _restore_stub(cls: type[PickleStub], args: tuple[Any, ...], state: Any) -> PickleStub:
    stub = cls(*args)
    stub.state = state
    return stub


def _stub(name: str) -> StandIns:
    return [(stub_class(name), name)]


def _empty_dict(*_factory: Any) -> dict[Any, Any]:
    # torch only fills exact dicts (SETITEMS), so a defaultdict comes back as a plain dict, factory dropped
    return {}


def _as_plain_dict(name: str) -> StandIns:
    return [(_empty_dict, name)]


def _numpy_scalar_stand_in(name: str) -> StandIns:
    return [(plain_scalar, name)]


def _numpy_dtype_classes() -> dict[str, type]:
    # numeric kinds only: an object or void dtype instance must never get through a BUILD
    classes = {type(np.dtype(code)) for code in np.typecodes["All"] if np.dtype(code).kind in PLAIN_KINDS}
    return {f"{cls.__module__}.{cls.__qualname__}": cls for cls in classes}


def _numpy_dtype_stand_in(name: str) -> StandIns:
    # pickle rebuilds a dtype with np.dtype(...) and then BUILD on it, whose type is a per-dtype class;
    # torch only BUILDs instances of registered types, so the (numeric) classes go in too
    return [(plain_dtype, name), *((cls, cls_name) for cls_name, cls in _numpy_dtype_classes().items())]


def _numpy_dtype_class_stand_in(name: str) -> StandIns | None:
    cls = _numpy_dtype_classes().get(name)
    return None if cls is None else [(cls, name)]


class AllowRule(NamedTuple):
    """Globals (``fnmatch`` patterns over ``module.qualname``) that load, how, and why they are needed."""

    patterns: tuple[str, ...]
    stand_in: Callable[[str], StandIns | None]
    why: str


# The only globals beyond torch's defaults that a checkpoint may name. Stubs never import the real code;
# numpy entries use numpy's own constructors, which only build numbers and dtypes from plain data.
ALLOW_LIST: Final[tuple[AllowRule, ...]] = (
    AllowRule(("argparse.Namespace",), _stub, "hyper-parameters saved by argparse-driven training scripts"),
    AllowRule(("pytorch_lightning.*",), _stub, "PL 1.0-1.4 key `callbacks` by callback class; PL metadata types"),
    AllowRule(("lightning.*",), _stub, "the same Lightning classes under the 2.x package name"),
    AllowRule(("lightning_fabric.*",), _stub, "Lightning Fabric metadata types in Lightning checkpoints"),
    AllowRule(("torchmetrics.*",), _stub, "metric objects saved inside Lightning checkpoints"),
    AllowRule(("pl_bolts.*",), _stub, "Lightning Bolts SSL models' callbacks and hyper-parameter types"),
    AllowRule(("omegaconf.*",), _stub, "Hydra / Lightning hyper-parameters saved as DictConfig"),
    AllowRule(("typing.Any",), _stub, "omegaconf node metadata names typing.Any as a type"),
    AllowRule(("collections.defaultdict",), _as_plain_dict, "omegaconf resolver caches, logged metric dicts"),
    AllowRule(("builtins.list", "builtins.dict", "builtins.int", "builtins.float", "builtins.str",
               "builtins.tuple", "builtins.bool"), _stub, "default factories of a defaultdict (dropped anyway)"),
    AllowRule(("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"), _numpy_scalar_stand_in,
              "metrics such as best_acc1 saved as numpy scalars (numpy 1.x / 2.x spelling)"),
    AllowRule(("numpy.dtype",), _numpy_dtype_stand_in, "the dtype every numpy scalar carries"),
    AllowRule(("numpy.dtypes.*",), _numpy_dtype_class_stand_in, "numpy 2 dtype classes named directly"),
)


def stand_ins_for(path: Path, names: Iterable[str]) -> StandIns:
    """Map each global a file names to its stand-in, or refuse the file.

    Args:
        path: The file, named in the error message.
        names: The globals a file names beyond torch's own ``weights_only`` allow-list.

    Returns:
        ``(stand_in, "module.qualname")`` pairs for :func:`allowing`.

    Raises:
        UnsafePickleError: If any name is outside :data:`ALLOW_LIST`; nothing from the file has run.

    Example:
        >>> stand_ins_for(Path("x.pth"), ["argparse.Namespace"])[0][1]
        'argparse.Namespace'
    """
    found = {name: _stand_ins(name) for name in sorted(names)}
    refused = [name for name, pairs in found.items() if pairs is None]
    if refused:
        more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
        raise UnsafePickleError(f"refusing {path}: it references {refused[0]}{more}, which could run code; "
                                "ssl_zoo only loads tensors and plain metadata")
    return [pair for pairs in found.values() for pair in pairs or ()]


def _stand_ins(name: str) -> StandIns | None:
    for rule in ALLOW_LIST:
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in rule.patterns):
            return rule.stand_in(name)
    return None


_REGISTRY_LOCK = threading.Lock()


@contextlib.contextmanager
def allowing(stand_ins: StandIns) -> Iterator[None]:
    """Register ``stand_ins`` with torch's weights-only unpickler for the duration of the block.

    Args:
        stand_ins: Pairs from :func:`stand_ins_for`.

    Example:
        >>> with allowing(stand_ins_for(path, scan.globals)):  # doctest: +SKIP
        ...     obj = torch.load(path, map_location="cpu", weights_only=True)
    """
    if not stand_ins:
        yield
        return
    # torch keeps one process-wide allow-list and removes these entries on exit, so two overlapping
    # restricted loads would pull each other's stand-ins away mid-load
    with _REGISTRY_LOCK, torch.serialization.safe_globals(stand_ins):
        yield


class PickleScan(NamedTuple):
    """What a static read of one pickle found."""

    protocol: int
    globals: frozenset[str]


_STRING_OPS: Final = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
                                "SHORT_BINSTRING"})
_MEMO_PUTS: Final = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GETS: Final = frozenset({"GET", "BINGET", "LONG_BINGET"})


def scan_pickle(stream: IO[bytes], budget: PickleBudget | None = None) -> PickleScan:
    """Read one pickle's opcodes, up to its STOP, and list the globals it names; nothing is executed.

    Args:
        stream: Positioned at the start of a pickle; left just after its STOP. Wrap it in a
            :class:`~.pickle_limits.BoundedStream` so that a declared length cannot make it allocate.
        budget: Resource limits checked at every opcode (see :mod:`.pickle_limits`).

    Returns:
        The pickle protocol and every global it names, spelled as torch looks them up (Python 3 names).

    Raises:
        ValueError: If the pickle is truncated or malformed.
        ResourceLimitError: If the pickle asks for more than ``budget`` allows.

    Example:
        >>> import argparse, io
        >>> scan_pickle(io.BytesIO(pickle.dumps(argparse.Namespace(lr=0.1), protocol=2)))
        PickleScan(protocol=2, globals=frozenset({'argparse.Namespace'}))
    """
    protocol, names, strings, memo = 0, set(), [], {}
    previous: str | None = None  # the string the previous opcode pushed, for memo bookkeeping
    for op, arg, _ in pickletools.genops(stream):
        if budget is not None:
            budget.step(op, arg)
        pushed = None
        if op.name == "PROTO":
            protocol = arg
        elif op.name in ("GLOBAL", "INST"):
            names.add(_python3_name(*arg.split(" ", 1)))
        elif op.name == "STACK_GLOBAL":  # protocol 4+: the names are the last two strings pushed
            names.add(_python3_name(*strings[-2:]) if len(strings) >= 2 else "<a global named at load time>")
        elif op.name in _STRING_OPS or op.name in _MEMO_GETS:
            pushed = arg if op.name in _STRING_OPS else memo.get(arg)
        elif op.name in _MEMO_PUTS:  # a put leaves the stack as it was
            memo[len(memo) if arg is None else arg] = previous
            continue
        if pushed is not None:
            strings.append(pushed)
        previous = pushed
    return PickleScan(protocol, frozenset(names))


def _python3_name(module: str, name: str) -> str:
    # torch renames Python 2 globals (__builtin__.set → builtins.set) before its lookup; do the same
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"
