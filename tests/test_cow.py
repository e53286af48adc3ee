"""Cow: clone on write (API.md, memkit.cow)."""

from __future__ import annotations

import pytest

from memkit import Cow


def test_reads_never_copy() -> None:
    data = {"k": [1, 2]}
    cow = Cow(data)
    assert cow.value is data
    assert cow.is_borrowed and not cow.is_owned
    assert cow.value is data  # still the same object: zero copies before to_mut()


def test_to_mut_copies_once_and_leaves_the_original_alone() -> None:
    data = [1, 2]
    cow = Cow(data)
    mine = cow.to_mut()
    assert mine is not data and mine == data
    assert cow.to_mut() is mine  # copied once
    mine.append(3)
    assert data == [1, 2] and cow.value == [1, 2, 3]
    assert cow.is_owned


@pytest.mark.parametrize("value", [b"abc", memoryview(b"abc")])
def test_bytes_like_values_become_bytearray(value: bytes | memoryview) -> None:
    cow = Cow(value)
    assert cow.value is value
    mine = cow.to_mut()
    assert isinstance(mine, bytearray) and mine == b"abc"
    mine[0] = ord("x")
    assert bytes(value) == b"abc"


def test_owned_never_copies() -> None:
    data = [1]
    cow = Cow.owned(data)
    assert cow.is_owned and cow.to_mut() is data and cow.into_owned() is data


def test_into_owned_copies_only_when_borrowed() -> None:
    data = {"a": 1}
    cow = Cow(data)
    owned = cow.into_owned()
    assert owned == data and owned is not data
    assert cow.into_owned() is owned


def test_shallow_copy_semantics_and_custom_types() -> None:
    inner = [1]
    cow = Cow({"inner": inner})
    assert cow.to_mut()["inner"] is inner  # copy.copy: shallow, as Rust's Clone of a Vec of Rc

    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    p = Point(1)
    cp = Cow(p)
    cp.to_mut().x = 5
    assert p.x == 1 and cp.value.x == 5


def test_repr() -> None:
    assert repr(Cow([1])) == "Cow([1])"
    assert repr(Cow.owned([1])) == "Cow.owned([1])"
