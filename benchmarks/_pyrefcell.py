"""A RefCell written the obvious way in pure Python: what memkit.RefCell is measured against."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class BorrowError(RuntimeError):
    pass


class PyRefCell:
    def __init__(self, value: Any) -> None:
        self._value = value
        self._borrows = 0  # > 0 shared, -1 exclusive

    def borrow_mut(self) -> PyRefMut:
        if self._borrows != 0:
            raise BorrowError("already borrowed")
        self._borrows = -1
        return PyRefMut(self)


class PyRefMut:
    def __init__(self, cell: PyRefCell) -> None:
        self._cell: PyRefCell | None = cell

    @property
    def value(self) -> Any:
        if self._cell is None:
            raise ValueError("released")
        return self._cell._value

    @value.setter
    def value(self, value: Any) -> None:
        if self._cell is None:
            raise ValueError("released")
        self._cell._value = value

    def release(self) -> None:
        if self._cell is not None:
            self._cell._borrows = 0
            self._cell = None

    def __enter__(self) -> PyRefMut:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
