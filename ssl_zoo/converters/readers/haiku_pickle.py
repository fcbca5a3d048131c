"""Read BYOL's 2020 checkpoint (a ``dill`` protocol-2 pickle of Haiku parameters) without dill, Haiku or JAX.

The file names a handful of globals: dill's helpers that rebuild NamedTuples and find numpy's C functions,
Haiku's ``FlatMapping`` and numpy's array reconstruction. This reader first lists every global the pickle
names from its opcodes (nothing runs), refuses the file unless each is on :data:`ALLOW_LIST`, then unpickles
with an ``Unpickler`` whose ``find_class`` returns a harmless stand-in for each allowed name and refuses
anything else. Pickle only ever calls what ``find_class`` returned, so the allow-list is the whole surface.
"""

from __future__ import annotations

import codecs
import collections
import functools
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from ...errors import NotACheckpointError, SslZooError, UnsafePickleError
from .numpy_plain import plain_array, plain_dtype, plain_scalar
from .pickle_limits import BoundedStream, Limits, PickleBudget
from .safe_pickle import scan_pickle

__all__ = ["ALLOW_LIST", "flatten_tree", "load_haiku_pickle", "read_haiku_pickle"]

_NUMPY_MODULES: Final = frozenset({"numpy.core._multiarray_umath", "numpy._core._multiarray_umath",
                                   "numpy.core.multiarray", "numpy._core.multiarray"})
# (module token, attribute) pairs dill's ``_get_attr`` may fetch
_MODULE_ATTRIBUTES: Final[dict[tuple[str, str], Any]] = {
    **{(m, "_reconstruct"): plain_array for m in _NUMPY_MODULES},
    **{(m, "scalar"): plain_scalar for m in _NUMPY_MODULES},
    ("_codecs", "encode"): codecs.encode,
}


class _ModuleToken(str):
    """What the stand-in of dill's ``_import_module`` returns: a module's name, never the module."""


@functools.cache
def _namedtuple(name: str, fields: tuple[str, ...]) -> type:
    return collections.namedtuple(name, fields)


def _create_namedtuple(name: str, fields: tuple[str, ...], module: str = "", defaults: Any = None) -> type:
    # dill would import ``module.name`` (byol, optax); a plain namedtuple with the same fields reads the same
    return _namedtuple(str(name), tuple(str(f) for f in fields))


def _import_module(name: str, safe: bool = False) -> _ModuleToken:
    if name not in _NUMPY_MODULES and name != "_codecs":
        raise pickle.UnpicklingError(f"the pickle imports module {name!r}, which is not allowed")
    return _ModuleToken(name)


def _get_attr(token: Any, name: str) -> Any:
    target = _MODULE_ATTRIBUTES.get((str(token), name)) if isinstance(token, _ModuleToken) else None
    if target is None:
        raise pickle.UnpicklingError(f"the pickle asks for {token}.{name}, which is not allowed")
    return target


def _create_array(function: Any, args: tuple, state: Any, npdict: Any = None) -> np.ndarray:
    # newer dill writes arrays through this helper; only numpy's own reconstruction is accepted
    if function is not plain_array:
        raise pickle.UnpicklingError("dill._dill._create_array with a function other than numpy's _reconstruct")
    array = plain_array(*args)
    array.__setstate__(state)  # checked: numeric dtype, raw bytes of exactly the shape's size
    return array


ALLOW_LIST: Final[dict[str, Any]] = {
    "dill._dill._create_namedtuple": _create_namedtuple,
    "dill._dill._import_module": _import_module,
    "dill._dill._get_attr": _get_attr,
    "dill._dill._create_array": _create_array,
    "haiku._src.data_structures.FlatMapping": dict,
    "haiku._src.data_structures.frozendict": dict,
    **{f"{m}.{n}": f for m in ("numpy.core.multiarray", "numpy._core.multiarray")
       for n, f in (("_reconstruct", plain_array), ("scalar", plain_scalar))},
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": plain_dtype,
    "_codecs.encode": codecs.encode,
}
"""Every global a BYOL pickle may name (dotted, Python 3 spelling) → the object standing in for it."""


class _AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        target = ALLOW_LIST.get(f"{module}.{name}")
        if target is None:
            raise pickle.UnpicklingError(f"global {module}.{name} is forbidden")
        return target


def load_haiku_pickle(path: Path | str) -> Any:
    """Unpickle a Haiku/dill checkpoint into dicts, NamedTuples and numpy arrays, running none of its code.

    Raises:
        UnsafePickleError: If the file names a global outside :data:`ALLOW_LIST` (checked before loading), or
            builds a numpy value that is not plain numeric data.
        ResourceLimitError: If the pickle asks for more than its size allows (see :mod:`.pickle_limits`).
        NotACheckpointError: If the file is not a pickle or is cut short.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        try:
            stream = BoundedStream(fh, size, str(path))
            names = scan_pickle(stream, PickleBudget(Limits.for_file(size), str(path))).globals
        except SslZooError:
            raise
        except (ValueError, EOFError) as exc:
            raise NotACheckpointError(f"{path} is not a complete pickle ({exc}): delete it and pull again") from None
        forbidden = sorted(names - set(ALLOW_LIST))
        if forbidden:
            raise UnsafePickleError(f"{path} names code ssl_zoo will not run ({', '.join(forbidden[:3])}): "
                                    "it is not the BYOL checkpoint; check where the file came from")
        fh.seek(0)
        try:
            return _AllowListUnpickler(fh).load()
        except SslZooError as exc:
            raise type(exc)(f"{path} cannot be read safely ({exc}): check where the file came from") from None
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
            raise UnsafePickleError(f"{path} cannot be read safely ({exc}): it is not the BYOL checkpoint "
                                    "ssl_zoo expects; check where the file came from") from None


def flatten_tree(tree: Any, prefix: str = "", convert: Callable[[np.ndarray], Any] = torch.from_numpy) -> dict:
    """Flatten dicts, NamedTuples and lists into ``{"a/b/0/c": leaf}``; numpy arrays go through ``convert``.

    Haiku module names already contain ``/`` (``res_net50/~/initial_conv``), so joining every level with
    ``/`` gives the names Haiku itself prints (``res_net50/~/initial_conv/w``).
    """
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        tree = tree._asdict()
    if isinstance(tree, Mapping):
        items = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, (list, tuple)):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        is_array = isinstance(tree, np.ndarray) and tree.dtype != object
        return {prefix: convert(tree.view(np.ndarray)) if is_array else tree}
    flat: dict[str, Any] = {}
    for key, value in items:
        flat.update(flatten_tree(value, f"{prefix}/{key}" if prefix else key, convert))
    return flat


def read_haiku_pickle(path: Path | str) -> dict[str, Any]:
    """Read a Haiku/dill checkpoint safely into ``{"experiment_state/online_params/<module>/<param>": tensor}``.

    Args:
        path: The pickle (BYOL's ``pretrain_res50x1.pkl``).

    Returns:
        Every leaf by its path; numpy arrays as CPU tensors, other leaves (``step``) as plain values.

    Raises:
        UnsafePickleError: If the file names code outside the allow-list (nothing from it ran).
        NotACheckpointError: If the file is not a complete pickle.

    Example:
        >>> flat = read_haiku_pickle(Path("pretrain_res50x1.pkl"))  # doctest: +SKIP
        >>> flat["experiment_state/online_params/res_net50/~/initial_conv/w"].shape
        torch.Size([7, 7, 3, 64])
    """
    return flatten_tree(load_haiku_pickle(path))
