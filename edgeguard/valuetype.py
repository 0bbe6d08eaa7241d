"""A base for frozen dataclasses that are created at every start (events, policy sections).

Python 3.11's ``dataclasses`` compiles each generated method on its own (``exec``, ~0.2 ms
each): a frozen dataclass costs six of them (``__init__``, ``__repr__``, ``__eq__``,
``__hash__``, ``__setattr__``, ``__delattr__``). A class declared
``@dataclass(frozen=True, slots=True, repr=False, eq=False)`` on top of :class:`ValueType`
gets ``__repr__``, ``__eq__`` and ``__hash__`` from here instead, written once, with the
dataclass semantics: fields compared and hashed as a tuple in declaration order (those
with ``compare=False`` / ``hash=False`` left out), equal only to an instance of the very
same class, shown as ``Name(field=value, ...)``. ``dataclasses.fields()``,
``dataclasses.replace()``, pickling and immutability are the dataclass's own, unchanged.
"""

from __future__ import annotations

import dataclasses
from operator import attrgetter
from typing import Any, ClassVar

__all__ = ["ValueType"]


def _getter(names: tuple[str, ...]) -> Any:
    """A callable giving the tuple of these attributes (C speed: ``attrgetter``)."""
    if not names:
        return lambda _obj: ()
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return attrgetter(*names)


class ValueType:
    """``__repr__``, ``__eq__`` and ``__hash__`` for a frozen dataclass (see the module)."""

    __slots__ = ()
    #: Per class: (repr names, compare key, hash key); built on first use.
    _value_keys: ClassVar[dict[type, tuple[tuple[str, ...], Any, Any]]] = {}

    def _keys(self) -> tuple[tuple[str, ...], Any, Any]:
        cls = type(self)
        keys = ValueType._value_keys.get(cls)
        if keys is None:
            fields = dataclasses.fields(self)  # type: ignore[arg-type]
            shown = tuple(f.name for f in fields if f.repr)
            compared = tuple(f.name for f in fields if f.compare)
            hashed = tuple(f.name for f in fields
                           if (f.compare if f.hash is None else f.hash))
            keys = (shown, _getter(compared), _getter(hashed))
            ValueType._value_keys[cls] = keys
        return keys

    def __repr__(self) -> str:
        names = self._keys()[0]
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
        return f"{type(self).__qualname__}({inner})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = self._keys()[1]
        return bool(key(self) == key(other))

    def __hash__(self) -> int:
        return hash(self._keys()[2](self))
