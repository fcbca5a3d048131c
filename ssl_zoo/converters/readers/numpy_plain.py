"""numpy values a pickle may rebuild: plain numbers only, never object dtypes or raw pointers.

A pickled dtype is rebuilt by ``numpy.dtype(...)`` and then BUILD with a state tuple the file chooses; a state
with flags 0 makes an object dtype claim it holds no references, and numpy then reads the file's bytes as
object pointers (a crash, or worse). Every function here accepts only a numeric dtype spelled as a short
string, and rebuilds a fresh dtype from that spelling before any bytes are interpreted, so whatever a BUILD
did to the dtype object the file built, the bytes are read as numbers.
"""

from __future__ import annotations

import re
from typing import Any, Final

import numpy as np

from ...errors import UnsafePickleError

try:
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct, scalar

__all__ = ["PlainArray", "plain_array", "plain_dtype", "plain_scalar", "checked_dtype", "PLAIN_KINDS"]

PLAIN_KINDS: Final = "biufc"  # bool, signed and unsigned integers, floats, complex
_SPELLING: Final = re.compile(r"[<>|=]?[biufc?][0-9]{0,2}")


def _refuse(what: str) -> UnsafePickleError:
    return UnsafePickleError(f"it builds {what}, not plain numeric data, refused before anything was built")


def plain_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    """The stand-in for ``numpy.dtype`` in a pickle: numeric dtypes spelled as a string only.

    Raises:
        UnsafePickleError: For object, structured, string or any non-numeric dtype.

    Example:
        >>> plain_dtype("f4", False, True)
        dtype('float32')
    """
    if not isinstance(spec, str) or not _SPELLING.fullmatch(spec):
        raise _refuse(f"numpy.dtype({spec!r})")
    return np.dtype(spec)


def checked_dtype(dtype: Any) -> np.dtype:
    """A fresh numeric dtype equal to ``dtype``'s spelling, whatever state a BUILD gave ``dtype``.

    Raises:
        UnsafePickleError: If ``dtype`` is not a numeric numpy dtype.
    """
    if not isinstance(dtype, np.dtype) or dtype.kind not in PLAIN_KINDS or dtype.names or dtype.subdtype:
        raise _refuse(f"a value of dtype {dtype!r}")
    fresh = np.dtype(dtype.str)
    if fresh.kind not in PLAIN_KINDS or fresh.itemsize != dtype.itemsize:
        raise _refuse(f"a value of dtype {dtype!r}")
    return fresh


def plain_scalar(dtype: Any, data: Any = b"") -> Any:
    """The stand-in for ``numpy.core.multiarray.scalar``: a number from exactly ``itemsize`` raw bytes.

    Example:
        >>> float(plain_scalar(np.dtype("f8"), np.float64(0.5).tobytes()))
        0.5
    """
    fresh = checked_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != fresh.itemsize:
        raise _refuse(f"a numpy scalar of {fresh} from {type(data).__name__} data")
    return scalar(fresh, data)


class PlainArray(np.ndarray):
    """An ndarray whose pickle state is checked (numeric dtype, raw bytes of exactly the right size) first."""

    def __setstate__(self, state: Any) -> None:
        super().__setstate__(plain_array_state(state))


def plain_array(subtype: Any, shape: Any, dtype_code: Any) -> PlainArray:
    """The stand-in for numpy's ``_reconstruct``: an empty :class:`PlainArray` that BUILD then fills."""
    if subtype is not np.ndarray:
        raise _refuse(f"an array of type {subtype!r}")
    return _reconstruct(PlainArray, shape, dtype_code)


def plain_array_state(state: Any) -> tuple:
    """``ndarray.__setstate__``'s state with a fresh numeric dtype; raw data must fill the shape exactly."""
    if not (isinstance(state, tuple) and len(state) == 5):
        raise _refuse("an array from a malformed state")
    version, shape, dtype, fortran, data = state
    fresh = checked_dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64)) if isinstance(shape, tuple) else -1
    if not isinstance(data, bytes) or count < 0 or len(data) != count * fresh.itemsize:
        raise _refuse(f"an array of shape {shape!r} from {type(data).__name__} data of the wrong size")
    return version, shape, fresh, fortran, data
