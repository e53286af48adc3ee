"""The fast-call glue (csrc/bindings/fastcall.hpp), through the private FastCallProbe."""

from __future__ import annotations

import pytest

from memkit._core._testing import FastCallProbe


def test_each_calling_convention_reaches_the_cpp_object() -> None:
    probe = FastCallProbe()
    assert probe.is_set() is True
    assert probe.pybind_is_set() is True
    assert probe.add(5) == 5
    assert probe.add(-2) == 3
    assert probe.total == 3
    assert len(probe) == 3
    assert probe.count() == 0
    assert probe.count(1, "two", None) == 3


def test_keyword_parsing_matches_a_python_def() -> None:
    probe = FastCallProbe()
    assert probe.echo(1) == (1, None, None)
    assert probe.echo(1, 2) == (1, 2, None)
    assert probe.echo(a=1, c=3) == (1, None, 3)
    assert probe.echo(1, c=3, b=2) == (1, 2, 3)
    with pytest.raises(TypeError, match=r"echo\(\) missing required argument 'a'"):
        probe.echo()
    with pytest.raises(TypeError, match=r"echo\(\) takes at most 2 positional arguments \(3 given\)"):
        probe.echo(1, 2, 3)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"echo\(\) got multiple values for argument 'a'"):
        probe.echo(1, a=1)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"echo\(\) got an unexpected keyword argument 'd'"):
        probe.echo(1, d=4)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        (0, ValueError, "probe: invalid_argument"),
        (1, IndexError, "probe: out_of_range"),
        (2, MemoryError, None),
        (3, KeyError, "probe: KeyError"),
        (4, RuntimeError, "probe: runtime_error"),
    ],
)
def test_cpp_exceptions_become_python_exceptions(kind: int, error: type[Exception], message: str | None) -> None:
    with pytest.raises(error, match=message):
        FastCallProbe().fail(kind)


def test_errors_set_by_the_method_propagate() -> None:
    probe = FastCallProbe()
    with pytest.raises(OverflowError):
        probe.add(2**64)
    with pytest.raises(TypeError):
        probe.add("1")  # type: ignore[arg-type]
    assert probe.total == 0


def test_length_slot_translates_exceptions() -> None:
    probe = FastCallProbe()
    probe.add(-1)
    with pytest.raises(ValueError, match="negative length"):
        len(probe)


def test_descriptor_checks_the_receiver_type() -> None:
    with pytest.raises(TypeError, match="doesn't apply to a 'object' object"):
        FastCallProbe.is_set(object())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        FastCallProbe.total.__get__(object())  # type: ignore[attr-defined]


def test_uninitialised_instance_is_refused_not_dereferenced() -> None:
    bare = FastCallProbe.__new__(FastCallProbe)
    with pytest.raises(TypeError, match="not initialized"):
        bare.is_set()
    with pytest.raises(TypeError, match="not initialized"):
        _ = bare.total
    with pytest.raises(TypeError, match="not initialized"):
        len(bare)


def test_python_subclass_with_multiple_bases_still_finds_the_object() -> None:
    class Mixin:
        def hello(self) -> str:
            return "hi"

    class Both(Mixin, FastCallProbe):
        pass

    both = Both()
    assert both.is_set() is True
    assert both.add(4) == 4
    assert both.hello() == "hi"


def test_methods_carry_signatures_and_docs() -> None:
    assert FastCallProbe.echo.__text_signature__ == "($self, /, a, b=None, *, c=None)"
    assert FastCallProbe.is_set.__doc__ == "The flag, through fastcall.hpp."
