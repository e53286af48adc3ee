"""What memkit's atheris harnesses share: input decoding, the import, and the run loop.

Each harness is a script (`python fuzz/fuzz_<area>.py [libFuzzer flags] [corpus dirs]`)
whose `one_input(data)` decodes a sequence of operations from the bytes libFuzzer hands it,
drives memkit with them and checks the results against a plain-Python model. A documented
exception (the ones each operation's docs list) is an expected outcome and is checked to
have changed nothing; any other exception, a failed check or a crash is a finding.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Sequence
from typing import TypeVar

import atheris

T = TypeVar("T")

# Integers a hand-written test would try first: the edges of every width memkit converts to.
EDGE_INTS = (
    0,
    1,
    -1,
    2,
    7,
    8,
    63,
    64,
    4095,
    4096,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**32 + 1,
    2**62,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**31),
    -(2**63),
    -(2**63) - 1,
    -(2**64),
    sys.maxsize,
    sys.maxsize + 1,
)


class Input:
    """A FuzzedDataProvider with the choices the harnesses make."""

    def __init__(self, data: bytes) -> None:
        self._fdp = atheris.FuzzedDataProvider(data)

    def left(self) -> int:
        return self._fdp.remaining_bytes()

    def below(self, n: int) -> int:
        """An int in [0, n)."""
        return self._fdp.ConsumeIntInRange(0, n - 1)

    def between(self, lo: int, hi: int) -> int:
        """An int in [lo, hi]."""
        return self._fdp.ConsumeIntInRange(lo, hi)

    def flag(self) -> bool:
        return self._fdp.ConsumeBool()

    def pick(self, seq: Sequence[T]) -> T:
        return seq[self.below(len(seq))]

    def raw(self, n: int) -> bytes:
        return self._fdp.ConsumeBytes(n)

    def filler(self, n: int) -> bytes:
        """n bytes of content from at most 8 input bytes (a buffer's contents should not eat the
        input that chooses the operations)."""
        seed = self._fdp.ConsumeBytes(self.below(9)) or b"\0"
        return (seed * (n // len(seed) + 1))[:n]

    def edge_or(self, lo: int, hi: int) -> int:
        """Mostly an int in [lo, hi]; now and then an edge of some integer width."""
        if self.below(8) == 0:
            return self.pick(EDGE_INTS)
        return self.between(lo, hi)

    def i64(self) -> int:
        """Any signed 64-bit value, edges often, now and then one just outside the range."""
        choice = self.below(10)
        if choice == 0:
            return self.pick(EDGE_INTS)
        if choice < 4:
            return self.between(-300, 300)
        return self._fdp.ConsumeIntInRange(-(2**63), 2**63 - 1)

    def size(self, small: int = 512) -> int:
        """A buffer size: mostly small, sometimes page-sized or larger, sometimes absurd."""
        choice = self.below(16)
        if choice < 10:
            return self.between(0, small)
        if choice < 13:
            return self.between(0, 1 << 17)
        if choice < 15:
            return self.pick((1 << 20, (1 << 20) + 1, 1 << 21))
        return self.pick(EDGE_INTS)

    def align(self) -> int:
        """An alignment: mostly a power of two up to 4096, sometimes larger or invalid."""
        choice = self.below(16)
        if choice < 11:
            return 1 << self.below(13)
        if choice < 13:
            return 1 << self.between(13, 31)
        return self.pick((0, 3, 6, 12, 100, -8, 1 << 40, 2**63, 2**64))


class Unraisable:
    """Collects exceptions Python could not raise (in __del__, in a weakref callback).

    A harness's hostile values run code from finalisers; an exception there would only be
    printed, so `check()` turns it into a finding.
    """

    def __init__(self) -> None:
        self.seen: list[BaseException | None] = []
        sys.unraisablehook = self.hook

    def hook(self, info: sys.UnraisableHookArgs) -> None:
        self.seen.append(info.exc_value)

    def check(self) -> None:
        if self.seen:
            exc = self.seen[0]
            self.seen.clear()
            raise AssertionError(f"exception in a finaliser: {exc!r}") from exc


UNRAISABLE = Unraisable()


def drive(inp: Input, model: object, ops: Sequence[Callable[..., None]], steps: int) -> None:
    """Runs up to `steps` operations picked by the input, checking the model after each."""
    for _ in range(steps):
        if inp.left() == 0:
            break
        inp.pick(ops)(model, inp)
        UNRAISABLE.check()
        model.check()  # type: ignore[attr-defined]


def instrument_module(module: types.ModuleType) -> None:
    """Adds coverage instrumentation to the functions and methods a module defines.

    The harness's own model branches (a refused exit, a stale key, a reused slot) are
    states of the API worth reaching, so libFuzzer sees them as coverage too.
    """
    for obj in list(vars(module).values()):
        if isinstance(obj, types.FunctionType) and obj.__module__ == module.__name__:
            atheris.instrument_func(obj)
        elif isinstance(obj, type) and obj.__module__ == module.__name__:
            for attr in vars(obj).values():
                if isinstance(attr, (staticmethod, classmethod)):
                    attr = attr.__func__
                if isinstance(attr, types.FunctionType):
                    atheris.instrument_func(attr)


def run(one_input: Callable[[bytes], None]) -> None:
    """Hands `one_input` to libFuzzer with this process's command line (libFuzzer's flags)."""
    instrument_module(sys.modules[one_input.__module__])
    instrument_module(sys.modules[__name__])
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
