"""memkit.cow: clone on write (Rust's ``Cow``).

A ``Cow`` holds a value it does not own (borrowed) until the first ``to_mut()``, which
makes one private copy; reads never copy. Bytes-like values become a ``bytearray`` when
made mutable, everything else is copied with ``copy.copy``.
"""

from __future__ import annotations

import copy
from typing import Any, Generic, TypeVar, cast

__all__ = ["Cow"]

T = TypeVar("T")


def _owned_copy(value: Any) -> Any:
    if isinstance(value, (bytes, memoryview)):
        return bytearray(value)
    return copy.copy(value)


class Cow(Generic[T]):
    """A borrowed value that is copied only when it is first mutated.

    ``Cow(value)`` borrows ``value``; ``Cow.owned(value)`` takes it as already owned.
    ``.value`` reads without copying. ``to_mut()`` copies once - on the first call while
    borrowed - and returns the owned object to mutate (``bytes`` and ``memoryview`` become a
    ``bytearray``; other types ``copy.copy``). ``into_owned()`` returns an owned value,
    copying only if still borrowed. The borrowed original is never modified.

    Not thread-safe by itself: two threads calling ``to_mut()`` at once may copy twice.

    Example:
        >>> config = {"debug": False}
        >>> c = Cow(config)
        >>> c.value is config
        True
        >>> c.to_mut()["debug"] = True
        >>> config["debug"], c.value["debug"], c.is_owned
        (False, True, True)
    """

    __slots__ = ("_owned", "_value")

    def __init__(self, value: T) -> None:
        self._value: T = value
        self._owned = False

    @classmethod
    def owned(cls, value: T) -> Cow[T]:
        """A Cow that already owns ``value``: ``to_mut()`` returns it without copying."""
        cow = cls(value)
        cow._owned = True
        return cow

    @property
    def value(self) -> T:
        """The current value, borrowed or owned; never copies."""
        return self._value

    @property
    def is_borrowed(self) -> bool:
        """True until the first ``to_mut()`` (or ``into_owned()``) copied the value."""
        return not self._owned

    @property
    def is_owned(self) -> bool:
        """True once the Cow holds its own copy (or was made with ``Cow.owned``)."""
        return self._owned

    def to_mut(self) -> T:
        """The owned value to mutate, copying the borrowed one on the first call only."""
        if not self._owned:
            self._value = cast(T, _owned_copy(self._value))
            self._owned = True
        return self._value

    def into_owned(self) -> T:
        """An owned value: the owned one as is, or a copy of the borrowed one."""
        return self.to_mut()

    def __repr__(self) -> str:
        return f"Cow.owned({self._value!r})" if self._owned else f"Cow({self._value!r})"
