"""memkit.slotmap: a generational arena whose stale keys never come back (Rust's ``slotmap``).

``SlotMap.insert(value)`` returns a key, a plain ``int`` packing ``generation << 32 | index``;
``sm[key]`` reaches the value in O(1), about as fast as ``d[key]`` on a dict. Removing an
entry (or clearing the map) makes its key stale for good: the slot is reused for later
entries, but under a new generation, so an old key raises ``KeyError`` instead of finding
somebody else's value - the ABA problem a plain list index or ``id()`` has. A slot whose
generation would wrap (after 2**31 uses) is retired, never reused.

The sharp edge: a key does not know which map made it. A key from another ``SlotMap`` may
name a live entry here.

Keys: any ``int`` (or object with ``__index__``) except ``bool``; other types raise
``TypeError`` wherever a key is taken (``sm[k]``, ``get``, ``in``, ``remove``, ``del``).
Negative ints and ints of 2**64 and above are never keys: lookups raise ``KeyError``,
``get`` returns the default, ``in`` is ``False``.

See docs/slotmap.md.
"""

from __future__ import annotations

from typing import SupportsIndex

from ._native import core as _core

__all__ = [
    "SlotMap",
    "SlotMapItems",
    "SlotMapIterator",
    "SlotMapKeys",
    "SlotMapValues",
    "key_generation",
    "key_index",
]

_slotmap = _core.slotmap
SlotMap = _slotmap.SlotMap
SlotMapKeys = _slotmap.SlotMapKeys
SlotMapValues = _slotmap.SlotMapValues
SlotMapItems = _slotmap.SlotMapItems
SlotMapIterator = _slotmap.SlotMapIterator


def key_index(key: SupportsIndex) -> int:
    """The slot index a key names: its low 32 bits.

    ``TypeError`` for non-ints (and ``bool``), ``ValueError`` for ints outside ``[0, 2**64)``.

    Example:
        >>> key_index(3 << 32 | 7)
        7
    """
    return _slotmap.key_index(key)


def key_generation(key: SupportsIndex) -> int:
    """The generation a key carries: its high 32 bits, odd for every key a map hands out.

    ``TypeError`` for non-ints (and ``bool``), ``ValueError`` for ints outside ``[0, 2**64)``.

    Example:
        >>> key_generation(3 << 32 | 7)
        3
    """
    return _slotmap.key_generation(key)
