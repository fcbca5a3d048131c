"""Budgets for reading a pickle: what a file of this size may ask for, checked opcode by opcode before loading.

A few bytes of pickle can ask for gigabytes: a memo index of 2**28 (CPython grows its memo array to it), a
string that declares 2**40 bytes, ``bytearray(3e9)``, a storage declaring more elements than the file holds,
a tuple nested a million deep (hashing it overflows the C stack), or shared references that a tree walk
expands into billions of nodes. :class:`PickleBudget` follows the pickle's stack abstractly while the
opcodes are listed (nothing is built), so each of these is refused with a :class:`ResourceLimitError` that
names the limit, before the real unpickler allocates anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO, Any, Final

from ...errors import ResourceLimitError

__all__ = ["Limits", "PickleBudget", "BoundedStream", "MAX_DEPTH", "MAX_OPCODES", "MAX_PICKLE_BYTES"]

MAX_PICKLE_BYTES: Final = 64 << 20  # a state dict's pickle is kilobytes; the tensors live outside it
MAX_OPCODES: Final = 10_000_000
MAX_DEPTH: Final = 200  # torch / Lightning checkpoints nest fewer than 20 levels
MAX_EXPANDED: Final = 20_000_000  # nodes a tree walk may visit once shared references are expanded
_MARK: Final = object()
_MUTATORS: Final = frozenset({"APPEND", "APPENDS", "SETITEM", "SETITEMS", "BUILD", "ADDITEMS"})
_MEMO_PUTS: Final = frozenset({"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GETS: Final = frozenset({"GET", "BINGET", "LONG_BINGET"})
_VALUE_OPS: Final = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "SHORT_BINUNICODE",
                               "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"})
# globals that allocate as many bytes (or elements) as an integer argument says
_ALLOCATORS: Final = frozenset({"builtins.bytearray", "builtins.bytes", "__builtin__.bytearray"})
# torch storage classes a persistent id names, with their element sizes (unknown names count 1 byte)
_ELEMENT_SIZE: Final = {"Double": 8, "Long": 8, "ComplexDouble": 16, "ComplexFloat": 8, "Float": 4, "Int": 4,
                        "Half": 2, "BFloat16": 2, "Short": 2}


@dataclass(frozen=True)
class Limits:
    """What one file may ask for; derived from its size by :meth:`for_file`.

    Attributes:
        max_alloc: Bytes one declared size (a storage, a bytearray, a string) may claim.
        max_total_storage: Bytes all tensor storages together may claim.
        max_opcodes, max_depth, max_expanded: Pickle opcodes, nesting depth, and tree nodes after shared
            references are expanded.
    """

    max_alloc: int
    max_total_storage: int
    max_opcodes: int = MAX_OPCODES
    max_depth: int = MAX_DEPTH
    max_expanded: int = MAX_EXPANDED

    @classmethod
    def for_file(cls, file_size: int) -> Limits:
        """Limits for a file of ``file_size`` bytes: nothing it declares may exceed what it can hold.

        Example:
            >>> Limits.for_file(1000).max_alloc
            1000
        """
        return cls(max_alloc=file_size, max_total_storage=file_size)


@dataclass
class _Node:
    depth: int = 0
    size: int = 1
    value: Any = None


@dataclass
class PickleBudget:
    """Follows one pickle's stack abstractly and raises when the pickle asks for more than ``limits`` allow.

    Args:
        limits: The budget.
        where: The file, for messages.

    Example:
        >>> import pickle, pickletools
        >>> budget = PickleBudget(Limits.for_file(100), "x.pkl")
        >>> for op, arg, _ in pickletools.genops(pickle.dumps([1, 2], protocol=2)):
        ...     budget.step(op, arg)
    """

    limits: Limits
    where: str
    opcodes: int = 0
    storages: dict[Any, int] = field(default_factory=dict)
    _stack: list[Any] = field(default_factory=list)
    _memo: dict[int, _Node] = field(default_factory=dict)

    def step(self, op: Any, arg: Any) -> None:
        """Account for one opcode (a ``pickletools.genops`` item); raise ``ResourceLimitError`` past a limit."""
        self.opcodes += 1
        if self.opcodes > self.limits.max_opcodes:
            self._refuse(f"more than {self.limits.max_opcodes:,} pickle opcodes")
        if op.name in _MEMO_PUTS:
            self._put(len(self._memo) if arg is None else arg)
        elif op.name in _MEMO_GETS:
            self._stack.append(self._memo.get(arg, _Node()))
        elif op.name == "DUP":
            self._stack.append(self._stack[-1] if self._stack else _Node())
        elif op.name == "MARK":
            self._stack.append(_MARK)
        else:
            self._apply(op, arg)

    def _put(self, index: int) -> None:
        # CPython's memo is an array as long as the largest index; a pickler numbers puts from 0 up
        if index > self.opcodes:
            self._refuse(f"memo index {index:,} beyond its {self.opcodes:,} opcodes so far (limit: memo index)")
        if self._stack and self._stack[-1] is not _MARK:
            self._memo[index] = self._stack[-1]

    def _apply(self, op: Any, arg: Any) -> None:
        popped = self._pop(op.stack_before)
        if not op.stack_after:
            return
        if op.name in _MUTATORS and popped:
            node = _Node(max([popped[0].depth] + [p.depth + 1 for p in popped[1:]]),
                         popped[0].size + sum(p.size for p in popped[1:]), popped[0].value)
        else:
            self._check_call(op, arg, popped)
            node = _Node(max((p.depth for p in popped), default=-1) + 1, 1 + sum(p.size for p in popped),
                         self._value(op, arg, popped))
        self._check(node)
        self._stack.extend([node] * len(op.stack_after))

    def _pop(self, before: list[Any]) -> list[_Node]:
        popped: list[_Node] = []
        for item in reversed(before):
            if item.name == "stackslice":
                while self._stack and self._stack[-1] is not _MARK:
                    popped.append(self._stack.pop())
            elif self._stack:
                top = self._stack.pop()
                if top is not _MARK:
                    popped.append(top)
        return popped[::-1]

    def _value(self, op: Any, arg: Any, popped: list[_Node]) -> Any:
        if op.name in _VALUE_OPS:
            return arg
        if op.name in ("GLOBAL", "INST"):
            return ".".join(str(arg).split(" ", 1))
        if op.name == "STACK_GLOBAL" and len(popped) == 2:
            return f"{popped[0].value}.{popped[1].value}"
        if op.name.startswith("TUPLE") or op.name == "EMPTY_TUPLE":
            return tuple(p.value for p in popped[:8])
        return None

    def _check_call(self, op: Any, arg: Any, popped: list[_Node]) -> None:
        if op.name == "REDUCE" and len(popped) == 2:
            self._check_allocation(popped[0].value, popped[1].value)
        elif op.name in ("BINPERSID", "PERSID"):
            self._check_storage(popped[0].value if popped else arg)

    def _check(self, node: _Node) -> None:
        if node.depth > self.limits.max_depth:
            self._refuse(f"containers nested deeper than {self.limits.max_depth} levels (limit: nesting depth)")
        if node.size > self.limits.max_expanded:
            self._refuse(f"shared references expand to more than {self.limits.max_expanded:,} objects "
                         "(limit: expanded size)")

    def _check_allocation(self, callable_name: Any, args: Any) -> None:
        if callable_name in _ALLOCATORS and isinstance(args, tuple):
            for value in args:
                if isinstance(value, int) and value > self.limits.max_alloc:
                    self._refuse(f"{callable_name}({value:,}) asks for more bytes than the file holds "
                                 f"({self.limits.max_alloc:,}; limit: declared size)")

    def _check_storage(self, pid: Any) -> None:
        # torch's persistent id: ("storage", StorageClass, key, location, numel, ...)
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage" and isinstance(pid[4], int)):
            return
        kind = str(pid[1]).rpartition(".")[2].removesuffix("Storage")
        declared = pid[4] * _ELEMENT_SIZE.get(kind, 1)
        self.storages[pid[2]] = declared
        total = sum(self.storages.values())
        if declared > self.limits.max_alloc or total > self.limits.max_total_storage:
            raise ResourceLimitError(f"{self.where}: tensor storages declare {max(declared, total):,} bytes but "
                                     f"the file holds {self.limits.max_total_storage:,} (limit: declared size): "
                                     "truncated or corrupt download; delete it and pull again")

    def _refuse(self, what: str) -> None:
        raise ResourceLimitError(f"{self.where}: the pickle asks for {what}; it is damaged or hostile, not a "
                                 "checkpoint ssl_zoo will read: check where the file came from")


class BoundedStream:
    """A read-only view of a stream that refuses any read longer than the bytes left (a declared length).

    ``pickletools`` reads a string's declared length in one call, and a buffered file allocates that much
    before reading; this wrapper refuses instead.

    Args:
        stream: The underlying binary stream, positioned at the pickle.
        size: Bytes available from the current position.
        where: The file, for messages.
    """

    def __init__(self, stream: IO[bytes], size: int, where: str) -> None:
        self._stream, self._left, self._where = stream, size, where

    def read(self, n: int = -1) -> bytes:
        """Read ``n`` bytes; refuse when ``n`` exceeds what is left."""
        if n is None or n < 0:
            n = self._left
        if n > self._left:
            raise ResourceLimitError(f"{self._where}: the pickle declares {n:,} bytes where only {self._left:,} "
                                     "remain (limit: declared size): truncated or corrupt download, or a hostile "
                                     "file; delete it and pull again")
        data = self._stream.read(n)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        """Read one line, at most the bytes left."""
        data = self._stream.readline(self._left)
        self._left -= len(data)
        return data
