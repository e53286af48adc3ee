"""The pytest plugin (API.md, memkit.alloc): markers, ini default, fixture, report, xdist.

Each test writes a small test file and runs pytest on it with ``pytester``. Exact sizes come
from the private helper ``core.alloc._allocate``. The plugin counts exactly the test
function's call, so an empty test allocates nothing; a body's own fixed cost, if any (the
helper builds the int holding an address uncounted), is measured by the plugin itself on
an identical body that allocates 0 bytes, which makes the boundaries exact to the byte and
the allocation. On
Python 3.10 the first call of a function allocates its frame object; the plugin does that
before counting for the test function, and the test files call their helpers once at import.
"""

from __future__ import annotations

import re
import sys

import pytest

import memkit.alloc

pytest_plugins = ["pytester"]

HEADER = '''
import sys

import pytest
import memkit.alloc as alloc
from memkit._native import core


def hold(nbytes):
    """Allocate exactly nbytes (raw domain), then free them."""
    address = core.alloc._allocate("raw", nbytes)
    core.alloc._free("raw", address)


def allocate(count):
    for _ in range(count):
        hold(16)


if sys.version_info < (3, 11):
    # Python 3.10 allocates a function's frame object at its first call (and keeps it for
    # the next): the plugin does that before counting for the test function itself, and
    # this call does it for the helpers, so no test here pays for it.
    allocate(1)
'''


def measured(pytester: pytest.Pytester, body: str) -> tuple[int, int]:
    """(peak bytes, allocations) of a test running ``body``, as the plugin counts them (--memkit-report)."""
    pytester.makepyfile(
        calibrate=HEADER + f"\n\ndef test_warm_up():\n    {body}\n\n\ndef test_measured():\n    {body}\n"
    )
    reprec = pytester.inline_run("--memkit-report", "calibrate.py")
    (report,) = [
        r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call" and "measured" in r.nodeid
    ]
    numbers = dict(report.user_properties)
    peak, count = numbers["memkit_peak_bytes"], numbers["memkit_allocations"]
    assert isinstance(peak, int) and isinstance(count, int)
    return peak, count


def outcomes(result: pytest.RunResult) -> dict[str, str]:
    """{test name: PASSED | FAILED | ERROR} from the short summary of a run with -rA."""
    found = {}
    for line in result.outlines:
        match = re.match(r"(PASSED|FAILED|ERROR) [^:\s]+::(\S+)", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def section(result: pytest.RunResult, title: str) -> list[str]:
    """The lines of one test's failure (title: its name) or error ("ERROR at setup of ...") section."""
    lines = result.outlines
    header = re.compile(rf"_+ {re.escape(title)} _+$")
    start = next(i for i, line in enumerate(lines) if header.match(line)) + 1
    end = next(
        (i for i in range(start, len(lines)) if re.match(r"(_{3,} .* _{3,}|={3,}.*)$", lines[i])),
        len(lines),
    )
    return lines[start:end]


# ---- memkit_limit --------------------------------------------------------------------------------


def test_empty_test_allocates_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import functools

import pytest


@pytest.fixture
def thing():
    return object()


@pytest.mark.memkit_limit(0)
@pytest.mark.memkit_max_allocations(0)
def test_empty():
    pass


@pytest.mark.memkit_limit(0)
@pytest.mark.memkit_max_allocations(0)
@pytest.mark.parametrize("x", [1, 2])
def test_empty_with_fixtures(x, thing, tmp_path):
    pass


class TestClass:
    @pytest.mark.memkit_limit(0)
    @pytest.mark.memkit_max_allocations(0)
    def test_empty_method(self, thing):
        pass


def calls_its_function(function):
    @functools.wraps(function)
    def wrapper():
        return function()

    return wrapper


@pytest.mark.memkit_limit(0)
@pytest.mark.memkit_max_allocations(0)
@calls_its_function
def test_empty_decorated():
    pass


def helper():
    pass


@pytest.mark.memkit_max_allocations(0)  # no budget: a refused frame would not be kept for the next call
def test_first_call_of_a_helper():
    helper()


@pytest.mark.memkit_limit(0)
@pytest.mark.memkit_max_allocations(0)
def test_second_call_of_a_helper():
    helper()


@pytest.mark.memkit_max_allocations(0)
def test_one_list():
    [[]]
"""
    )
    result = pytester.runpytest("-rA")
    found = outcomes(result)
    if sys.version_info < (3, 11):
        # A function's first call allocates its frame object (or grows a free one): the plugin
        # does it before counting for the test function and what it wraps, not for a helper.
        del found["test_first_call_of_a_helper"]
    else:
        assert found.pop("test_first_call_of_a_helper") == "PASSED"
    assert found == {
        "test_empty": "PASSED",
        "test_empty_with_fixtures[1]": "PASSED",
        "test_empty_with_fixtures[2]": "PASSED",
        "TestClass::test_empty_method": "PASSED",
        "test_empty_decorated": "PASSED",
        "test_second_call_of_a_helper": "PASSED",
        "test_one_list": "FAILED",
    }


def test_limit_boundary_is_exact(pytester: pytest.Pytester) -> None:
    overhead, _ = measured(pytester, "hold(0)")  # the int of the address is not counted
    assert 0 <= overhead < 100
    pytester.makepyfile(
        HEADER
        + f"""
@pytest.mark.memkit_limit("64 KiB")
def test_exactly_the_budget():
    hold({64 * 1024 - overhead})


@pytest.mark.memkit_limit("64 KiB")
def test_one_byte_more():
    hold({64 * 1024 - overhead + 1})
"""
    )
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=1, failed=1)
    assert outcomes(result) == {"test_exactly_the_budget": "PASSED", "test_one_byte_more": "FAILED"}
    assert "went over its budget of 65,536 bytes (64 KiB)" in section(result, "test_one_byte_more")[0]


def test_limit_failure_message_is_short(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest


@pytest.mark.memkit_limit("1 MiB")
def test_big():
    data = bytearray(8 * 1024 * 1024)


@pytest.mark.memkit_limit("1 MiB")
def test_that_handles_its_memory_error():
    with pytest.raises(MemoryError):
        bytearray(8 * 1024 * 1024)


@pytest.mark.memkit_limit("1 MiB")
def test_that_turns_it_into_another_error():
    try:
        bytearray(8 * 1024 * 1024)
    except MemoryError:
        raise RuntimeError("could not load the table\\nsecond line") from None


@pytest.mark.memkit_limit("64 MiB")
def test_with_a_limit_of_its_own():
    import memkit.alloc

    with memkit.alloc.limit("1 MiB"):
        bytearray(8 * 1024 * 1024)
"""
    )
    result = pytester.runpytest("-rA")
    assert outcomes(result) == {
        "test_big": "FAILED",
        "test_that_handles_its_memory_error": "PASSED",
        "test_that_turns_it_into_another_error": "FAILED",
        "test_with_a_limit_of_its_own": "FAILED",
    }
    lines = [line for line in section(result, "test_big") if line.strip()]
    assert len(lines) == 2, lines  # no traceback, no chained exceptions
    assert lines[0] == "memkit_limit: the test went over its budget of 1,048,576 bytes (1 MiB)"
    refused = re.fullmatch(
        r"an allocation of 8,388,60\d bytes \(8 MiB\) was refused; the test's peak was ([\d,]+) bytes( \(.*\))?",
        lines[1],
    )
    assert refused and int(refused.group(1).replace(",", "")) < 1024 * 1024
    converted = [line for line in section(result, "test_that_turns_it_into_another_error") if line.strip()]
    assert converted[0] == lines[0] and len(converted) == 3
    assert converted[2] == "then it raised RuntimeError: could not load the table"
    own = "\n".join(section(result, "test_with_a_limit_of_its_own"))  # not the plugin's: a usual traceback
    assert "MemoryLimitError: memory budget of 1048576 bytes exceeded" in own and "memkit_limit:" not in own


def test_ini_default_and_markers_that_override_it(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmemkit_limit = 1 MiB\n")
    pytester.makepyfile(
        """
import pytest

FOUR_MIB = 4 * 1024 * 1024


def test_small():
    bytearray(100_000)


def test_big():
    bytearray(FOUR_MIB)


@pytest.mark.memkit_limit("8 MiB")
def test_big_with_a_bigger_budget():
    bytearray(FOUR_MIB)


@pytest.mark.memkit_limit(None)
def test_big_without_a_budget():
    bytearray(FOUR_MIB)


@pytest.mark.memkit_limit("10 KiB")
def test_small_with_a_smaller_budget():
    bytearray(100_000)


@pytest.mark.memkit_limit("10 KiB")
class TestClassBudget:
    def test_small_under_the_class_budget(self):
        bytearray(100_000)

    @pytest.mark.memkit_limit("8 MiB")
    def test_big_under_its_own_budget(self):
        bytearray(FOUR_MIB)
"""
    )
    result = pytester.runpytest("-rA")
    assert outcomes(result) == {
        "test_small": "PASSED",
        "test_big": "FAILED",
        "test_big_with_a_bigger_budget": "PASSED",
        "test_big_without_a_budget": "PASSED",
        "test_small_with_a_smaller_budget": "FAILED",
        "TestClassBudget::test_small_under_the_class_budget": "FAILED",
        "TestClassBudget::test_big_under_its_own_budget": "PASSED",
    }
    assert "budget of 1,048,576 bytes (1 MiB)" in section(result, "test_big")[0]
    assert "budget of 10,240 bytes (10 KiB)" in section(result, "test_small_with_a_smaller_budget")[0]


def test_bad_ini_value_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmemkit_limit = lots\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option memkit_limit: size must be *'lots'*"])


# ---- memkit_max_allocations ---------------------------------------------------------------------


def test_max_allocations_boundary_is_exact(pytester: pytest.Pytester) -> None:
    _, n = measured(pytester, "allocate(5)")
    assert n >= 5  # each hold() makes its block (the int of its address is not counted)
    pytester.makepyfile(
        HEADER
        + f"""
@pytest.mark.memkit_max_allocations({n})
def test_exactly_n():
    allocate(5)


@pytest.mark.memkit_max_allocations({n - 1})
def test_one_more_than_allowed():
    allocate(5)
"""
    )
    result = pytester.runpytest("-rA")
    assert outcomes(result) == {"test_exactly_n": "PASSED", "test_one_more_than_allowed": "FAILED"}
    (message,) = [line for line in section(result, "test_one_more_than_allowed") if line.strip()]
    assert message == f"memkit_max_allocations: the test made {n} allocations, over its limit of {n - 1}"


# ---- memkit_no_leaks --------------------------------------------------------------------------


def test_no_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

KEPT = []
SEEN = {}


@pytest.mark.memkit_no_leaks
def test_leaks():
    KEPT.append(bytearray(10_000))


@pytest.mark.memkit_no_leaks()
def test_clean():
    data = {str(i): [i, (i, float(i))] for i in range(1000)}
    assert len(data) == 1000


@pytest.mark.memkit_no_leaks
def test_cycles_are_collected():
    for _ in range(100):
        node = {}
        node["self"] = node


@pytest.mark.memkit_no_leaks(tolerance="64 KiB")
def test_leak_within_the_tolerance():
    KEPT.append(bytearray(10_000))


@pytest.mark.memkit_no_leaks("1 KiB")
def test_leak_over_the_tolerance():
    KEPT.append(bytearray(10_000))


@pytest.mark.memkit_no_leaks(warmups=3)
def test_warm_ups_reuse_the_fixture_values(tmp_path):
    SEEN[id(tmp_path)] = SEEN.get(id(tmp_path), 0) + 1


def test_ran_four_times_with_one_fixture_value():
    assert list(SEEN.values()) == [4]
"""
    )
    result = pytester.runpytest("-rA")
    assert outcomes(result) == {
        "test_leaks": "FAILED",
        "test_clean": "PASSED",
        "test_cycles_are_collected": "PASSED",
        "test_leak_within_the_tolerance": "PASSED",
        "test_leak_over_the_tolerance": "FAILED",
        "test_warm_ups_reuse_the_fixture_values": "PASSED",
        "test_ran_four_times_with_one_fixture_value": "PASSED",
    }
    (message,) = [line for line in section(result, "test_leaks") if line.strip()]
    assert re.fullmatch(
        r"memkit_no_leaks: the test kept [\d,]+ bytes \(\S+ KiB\) after 1 warm-up run and gc.collect\(\), "
        r"over its tolerance of 0 bytes",
        message,
    ), message
    assert "over its tolerance of 1,024 bytes (1 KiB)" in section(result, "test_leak_over_the_tolerance")[0]


def test_first_tests_of_a_session(pytester: pytest.Pytester) -> None:
    """In a new process, where the plugin's own functions run for the first time (on Python
    3.10 a first call allocates a frame object), nothing of the plugin is counted."""
    pytester.makepyfile(
        """
import pytest


@pytest.mark.memkit_no_leaks
def test_clean():
    pass


@pytest.mark.memkit_no_leaks(warmups=0)
def test_clean_without_a_warm_up():
    pass


@pytest.mark.memkit_limit(0)
@pytest.mark.memkit_max_allocations(0)
def test_empty():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-rA")
    assert outcomes(result) == {
        "test_clean": "PASSED",
        "test_clean_without_a_warm_up": "PASSED",
        "test_empty": "PASSED",
    }


# ---- bad marker arguments -----------------------------------------------------------------------

BAD_MARKERS = {
    'memkit_limit("lots")': "memkit_limit('lots'): size must be a number of bytes",
    "memkit_limit()": "memkit_limit(): missing a required argument: 'max_bytes'",
    "memkit_limit(1.5)": "memkit_limit(1.5): a size is an int or a string like '24 MiB', got float",
    'memkit_limit("1 MiB", "2 MiB")': "too many positional arguments",
    "memkit_max_allocations(-1)": "memkit_max_allocations(-1): n must be an int >= 0, got -1",
    'memkit_max_allocations("10")': "n must be an int >= 0, got '10'",
    "memkit_max_allocations(True)": "n must be an int >= 0, got True",
    "memkit_no_leaks(warmups=-1)": "memkit_no_leaks(warmups=-1): warmups must be an int >= 0, got -1",
    'memkit_no_leaks(tolerance="a lot")': "size must be a number of bytes",
    "memkit_no_leaks(tolerance=-1)": "size must be >= 0, got -1",
    'memkit_no_leaks(tol="1 KiB")': "got an unexpected keyword argument 'tol'",
}


def test_bad_marker_arguments_are_usage_errors(pytester: pytest.Pytester) -> None:
    source = ["import pytest\n"]
    for i, marker in enumerate(BAD_MARKERS):
        source.append(f"@pytest.mark.{marker}\ndef test_{i}():\n    raise AssertionError('the test ran')\n")
    pytester.makepyfile("\n\n".join(source))
    result = pytester.runpytest("-rA")
    result.assert_outcomes(errors=len(BAD_MARKERS))
    for i, expected in enumerate(BAD_MARKERS.values()):
        (message,) = [line for line in section(result, f"ERROR at setup of test_{i}") if line.strip()]
        assert message.startswith("usage error in @pytest.mark.memkit_") and expected in message, message


# ---- the memkit_tracker fixture ------------------------------------------------------------------


def test_tracker_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
TRACKERS = [None, None]


@pytest.fixture
def big_setup():
    data = bytearray(1_000_000)  # setup: not the test's call, not counted
    yield data


def body(tracker, slot, nbytes):
    hold(nbytes)
    assert tracker.allocated_bytes >= nbytes  # live numbers during the call
    TRACKERS[slot] = tracker


if sys.version_info < (3, 11):
    body(alloc.track(), 0, 0)  # its frame object, as for the helpers above


def test_a_block(memkit_tracker, big_setup):
    body(memkit_tracker, 0, 100_000)


def test_a_bigger_block(memkit_tracker, big_setup):
    body(memkit_tracker, 1, 150_000)


def test_the_numbers():
    small, big = TRACKERS
    assert isinstance(small, alloc.Tracker) and not isinstance(small, alloc.Limit)
    assert big.peak_bytes - small.peak_bytes == 50_000
    assert big.allocations == small.allocations and small.peak_bytes < 1_000_000
    before = small.allocations
    hold(1000)
    assert small.allocations == before  # it counted the call only


@pytest.mark.memkit_limit("2 MiB")
def test_with_a_budget_it_is_the_budget(memkit_tracker):
    assert isinstance(memkit_tracker, alloc.Limit) and memkit_tracker.max_bytes == 2 * 1024 * 1024
"""
    )
    result = pytester.runpytest("-rA")
    result.assert_outcomes(passed=4)


# ---- --memkit-report ------------------------------------------------------------------------------

REPORTED = (
    HEADER
    + """
def test_one_mib():
    hold(1024 * 1024)


def test_nothing():
    pass


def test_64_kib():
    hold(64 * 1024)


@pytest.mark.memkit_limit("1 KiB")
def test_over_budget():
    hold(4096)


@pytest.mark.memkit_max_allocations(0)
def test_too_many_allocations():
    [[] for _ in range(100)]


@pytest.mark.memkit_no_leaks
def test_clean():
    [[] for _ in range(100)]
"""
)


def report_rows(result: pytest.RunResult) -> list[tuple[int, str]]:
    """(peak bytes, test name) of each row of the --memkit-report table, in order."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "memkit: peak net bytes per test" in line)
    assert lines[start + 1].split() == ["peak", "bytes", "peak", "allocations", "test"]
    rows = []
    for line in lines[start + 2 :]:
        match = re.match(r"\s*([\d,]+)\s+\S+ \S+\s+[\d,]+\s+\S+::(\S+)$", line)
        if not match:
            break
        rows.append((int(match.group(1).replace(",", "")), match.group(2)))
    return rows


def test_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(REPORTED)
    result = pytester.runpytest("--memkit-report")
    result.assert_outcomes(passed=4, failed=2)
    rows = report_rows(result)
    names = [name for _, name in rows]
    assert names[:2] == ["test_one_mib", "test_64_kib"] and sorted(names) == sorted(
        re.findall(r"def (test_\w+)", REPORTED)
    )
    assert rows[0][0] > 1023 * 1024 and rows[1][0] > 63 * 1024
    assert [peak for peak, _ in rows] == sorted((peak for peak, _ in rows), reverse=True)
    assert "memkit: peak" not in pytester.runpytest().stdout.str()  # no table without the option


def test_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(REPORTED)
    result = pytester.runpytest_subprocess("-n", "2", "-rA", "--memkit-report")
    result.assert_outcomes(passed=4, failed=2)
    assert outcomes(result) == {
        "test_one_mib": "PASSED",
        "test_nothing": "PASSED",
        "test_64_kib": "PASSED",
        "test_over_budget": "FAILED",
        "test_too_many_allocations": "FAILED",
        "test_clean": "PASSED",
    }
    result.stdout.fnmatch_lines(["*memkit_limit: the test went over its budget of 1,024 bytes (1 KiB)"])
    result.stdout.fnmatch_lines(["*memkit_max_allocations: the test made * allocations, over its limit of 0"])
    names = [name for _, name in report_rows(result)]
    assert names[:2] == ["test_one_mib", "test_64_kib"] and len(names) == 6
    assert result.stdout.str().count("memkit: peak net bytes per test") == 1


# ---- registration and staying out of the way -----------------------------------------------------


def test_auto_registered_with_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = --strict-markers --strict-config\n")
    pytester.makepyfile(
        """
import pytest


@pytest.mark.memkit_limit("1 MiB")
def test_big():
    bytearray(4 * 1024 * 1024)


@pytest.mark.memkit_max_allocations(1_000)
@pytest.mark.memkit_no_leaks
def test_fine():
    pass
"""
    )
    result = pytester.runpytest_subprocess("-rA")  # no -p memkit.pytest_plugin
    assert outcomes(result) == {"test_big": "FAILED", "test_fine": "PASSED"}
    assert pytester.parseconfigure().pluginmanager.hasplugin("memkit")


def test_unmarked_tests_are_left_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest
import memkit.alloc as alloc


def test_plain(request):
    assert request.function is test_plain and not alloc.installed()


@pytest.mark.memkit_limit("1 MiB")
def test_marked(request):
    assert request.function is not test_marked and alloc.installed()


def test_after():
    assert not alloc.installed()  # the plugin took away the hook it put in
"""
    )
    pytester.runpytest().assert_outcomes(passed=3)
    assert not memkit.alloc.installed()
