"""`python -m memkit bench`: the table, the JSON report, progress, options and verdicts.

The command's real runs take a minute (or 20 seconds with --quick); these tests use the
hidden ``--smoke`` mode (one round at tiny sizes), which goes through every row, the
child interpreter of the allocator-hook groups and both output formats, but whose numbers
mean nothing. No test here asserts anything about speed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import memkit
from memkit import _bench as cases
from memkit.__main__ import _BENCH_AREAS, main
from memkit._bench import arena as arena_cases
from memkit._bench import atomic as atomic_cases
from memkit._bench import cli as bench
from memkit._bench.cell import PyBorrowError, PyRefCell

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
STATUSES = {"baseline", "meets", "misses", "info", "skipped", "error"}
VERDICT = re.compile(
    r"^(baseline|info|info \(nothing to compare with\)|skipped: .+|error: .+"
    r"|meets bars? \(.+\)|(over|misses) bar \(.+\)(; meets .+)?)$"
)


def memkit_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m memkit bench ...`` (conftest.py makes it import the memkit under test)."""
    return subprocess.run(
        [sys.executable, "-m", "memkit", "bench", *args], capture_output=True, text=True, check=False, cwd=cwd
    )


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return memkit_bench("--smoke", "--json", cwd=tmp_path_factory.mktemp("bench"))


def rows_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for g in report["groups"] for row in g["rows"]]


# ---- the JSON report -------------------------------------------------------------------------------


def test_json_report_covers_every_area_and_row(smoke_run: subprocess.CompletedProcess[str]) -> None:
    assert smoke_run.returncode == 0, smoke_run.stderr
    report = json.loads(smoke_run.stdout)  # stdout is one JSON document and nothing else
    assert report["schema"] == bench.SCHEMA and report["mode"] == "smoke"
    assert report["memkit"] == memkit.__version__
    assert report["areas"] == cases.AREAS
    assert [g["key"] for g in report["groups"]] == [g.key for g in cases.GROUPS]
    for g, spec in zip(report["groups"], cases.GROUPS, strict=True):
        assert g["area"] == spec.area and g["area_name"] == cases.AREAS[spec.area]
        assert [row["key"] for row in g["rows"]] == [c.key for c in spec.cases]
        assert g["rounds"] >= 1 and g["seconds"] >= 0 and g["ops"] >= 1
        assert g["timer"] == spec.timer and g["timer"] in bench.TIMERS
    for key in ("python", "implementation", "python_build", "platform", "cpus", "elapsed_s", "load_average"):
        assert key in report


def test_json_rows_have_positive_ratios_and_verdicts(smoke_run: subprocess.CompletedProcess[str]) -> None:
    report = json.loads(smoke_run.stdout)
    for g in report["groups"]:
        for row in g["rows"]:
            assert row["status"] in STATUSES and VERDICT.match(row["verdict"]), row
            if row["status"] == "skipped":
                assert row["ratio"] is None and row["median_ns"] is None
                continue
            assert row["status"] != "error", row
            assert row["median_ns"] > 0 and row["per_op_ns"] > 0 and row["samples"] >= 1
            assert row["ratio"] > 0
            if row["baseline"]:
                assert row["status"] == "baseline" and row["ratio"] == 1.0
            for b in row["bars"]:
                assert b["ratio"] > 0 and isinstance(b["met"], bool) and b["text"]
            if row["status"] in ("meets", "misses"):
                assert row["bars"] and (row["status"] == "meets") == all(b["met"] for b in row["bars"])
    summary = report["summary"]
    statuses = [row["status"] for row in rows_of(report)]
    assert all(summary[s] == statuses.count(s) for s in STATUSES)
    assert len(summary["missed"]) == summary["misses"]


def test_progress_goes_to_stderr(smoke_run: subprocess.CompletedProcess[str]) -> None:
    lines = smoke_run.stderr.splitlines()
    total = len(cases.GROUPS)
    for i, g in enumerate(cases.GROUPS, start=1):
        expected = f"memkit bench [{i:>2}/{total}] {cases.AREAS[g.area]}: "
        assert any(line.startswith(expected) for line in lines), (expected, smoke_run.stderr)
    assert "memkit bench [" not in smoke_run.stdout


def test_bars_are_the_feature_bars(smoke_run: subprocess.CompletedProcess[str]) -> None:
    rows = {(g["key"], row["key"]): row for g in json.loads(smoke_run.stdout)["groups"] for row in g["rows"]}
    expected = {
        ("fastcall.method", "fastcall"): ["<= 1.5x"],
        ("arena.alloc", "arena_reset"): ["<= 0.6x"],
        ("pool.request", "pool"): ["<= 0.7x"],
        ("atomic.loop", "fetch_add"): ["<= 1.6x"],
        ("atomic.loop", "load"): ["<= 1.4x"],
        ("atomic.loop", "with_lock"): [">= 4x slower than a.fetch_add(1)"],
        ("atomic.false_sharing", "padded"): [">= 4x faster"],
        ("cell.borrow_mut", "refcell"): ["<= 1.0x", ">= 4x faster than pure-Python RefCell"],
        ("cell.get_loop", "cell_get"): ["<= 1.5x"],
        ("sync.uncontended", "mutex"): ["<= 1.0x"],
        ("slotmap.lookup", "slotmap"): ["<= 1.5x"],
        ("slotmap.churn", "slotmap_remove"): ["<= 1.5x"],
        ("alloc.workload", "counting"): ["<= 1.15x"],
        ("alloc.workload", "limit"): ["<= 1.2x"],
        ("layout.read", "view"): ["<= 1.0x"],
        ("layout.soa", "soa"): [">= 5x faster"],
    }
    for key, texts in expected.items():
        row = rows[key]
        if row["status"] != "skipped":
            assert [b["text"] for b in row["bars"]] == texts, key


# ---- the table ---------------------------------------------------------------------------------------


def test_table_from_a_report(smoke_run: subprocess.CompletedProcess[str]) -> None:
    report = json.loads(smoke_run.stdout)
    table = bench.format_table(report)
    assert table.startswith(f"memkit {memkit.__version__} bench (smoke): ")
    for g in report["groups"]:
        assert f"{g['area_name']}: {g['title']}  [per {g['op']}, " in table
        for row in g["rows"]:
            assert any(
                line.startswith(f"  {row['label']} ") and line.endswith(row["verdict"]) for line in table.splitlines()
            )
    assert re.search(r"^bars: \d+ met, \d+ missed; \d+ rows for information, \d+ skipped, 0 failed$", table, re.M)


def test_table_warns_when_the_machine_was_busy(smoke_run: subprocess.CompletedProcess[str]) -> None:
    report = json.loads(smoke_run.stdout)
    report["cpus"] = 2
    report["load_average"] = {"start": [0.4, 0.3, 0.2], "end": [1.1, 0.5, 0.3]}
    assert "WARNING" not in bench.format_table(report)
    report["load_average"]["end"] = [2.5, 1.0, 0.5]
    assert "WARNING: the machine was busy (load average up to 2.5 on 2 CPUs)" in bench.format_table(report)
    report["load_average"] = {"start": None, "end": None}
    assert "load average unknown" in bench.format_table(report)


def test_table_goes_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--smoke", "--filter", "cell"]) == 0
    out, err = capsys.readouterr()
    assert "Cell/RefCell: with cell.borrow_mut() as g: g.value += 1" in out
    assert "  memkit RefCell " in out and "baseline" in out
    assert "memkit bench [1/3] Cell/RefCell" in err and "memkit bench [" not in out
    assert "Arena" not in out  # --filter


def test_format_time() -> None:
    assert bench.format_time(None) == "-"
    assert bench.format_time(21.94) == "21.9 ns"
    assert bench.format_time(512.0) == "512 ns"
    assert bench.format_time(3_410.0) == "3.41 us"
    assert bench.format_time(65_200_000.0) == "65.2 ms"
    assert bench.format_time(1_200_000_000.0) == "1.2 s"


# ---- options ---------------------------------------------------------------------------------------


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for option in ("--json", "--quick", "--filter AREA", "--rounds N"):
        assert option in out
    assert "--smoke" not in out
    assert tuple(cases.AREAS) == _BENCH_AREAS and ", ".join(_BENCH_AREAS) in " ".join(out.split())
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "bench" in capsys.readouterr().out


def test_filter_selects_areas_and_groups() -> None:
    assert bench.select_groups(None) == list(cases.GROUPS)
    assert [g.key for g in bench.select_groups(["arena,pool"])] == ["arena.alloc", "pool.request"]
    assert [g.key for g in bench.select_groups(["Layout", "atomic.loop"])] == [
        "atomic.loop",
        "layout.read",
        "layout.write",
        "layout.soa",
    ]


@pytest.mark.parametrize(
    ("args", "message"), [(["--filter", "nope"], "unknown area 'nope'"), (["--rounds", "0"], "at least 1")]
)
def test_bad_options(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--smoke", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_rounds_fixes_the_number_of_interleaved_rounds() -> None:
    result = bench.measure_group(cases.group("cell.get_loop"), bench.MODES["smoke"], rounds=4)
    assert result.rounds == 4
    assert [row.samples for row in result.rows] == [4, 4]


# ---- skipped and failing rows ----------------------------------------------------------------------


def test_a_missing_optional_package_skips_its_row(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` now raises ImportError
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert main(["bench", "--smoke", "--json", "--filter", "arena,layout.soa"]) == 0
    report = json.loads(capsys.readouterr().out)
    arena, soa = report["groups"]
    rows = {row["key"]: row for row in arena["rows"]}
    assert rows["pyarrow"]["status"] == "skipped" and rows["pyarrow"]["verdict"] == "skipped: pyarrow not installed"
    assert rows["numpy_empty"]["verdict"] == "skipped: numpy not installed"
    assert rows["arena_reset"]["status"] in ("meets", "misses") and rows["arena_reset"]["ratio"] > 0
    assert [row["status"] for row in soa["rows"]] == ["skipped", "skipped"]
    assert report["summary"]["skipped"] == 4 and report["summary"]["error"] == 0


def test_a_failing_row_is_reported_and_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class BrokenArena:
        def __init__(self) -> None:
            raise RuntimeError("no arena today")

    monkeypatch.setattr(arena_cases, "Arena", BrokenArena)
    assert main(["bench", "--smoke", "--filter", "arena"]) == 1
    out = capsys.readouterr().out
    assert "error: RuntimeError: no arena today" in out and "2 failed" in out
    assert "bytearray(64)" in out and "baseline" in out  # the other rows still ran


def test_a_check_that_fails_is_an_error_row(monkeypatch: pytest.MonkeyPatch) -> None:
    class CountingNothing:
        def __init__(self) -> None:
            self.n = 0

        def fetch_add(self, _: int) -> int:
            return 0

        def load(self) -> int:
            return 0

    monkeypatch.setattr(atomic_cases, "AtomicInt", CountingNothing)
    result = bench.measure_group(cases.group("atomic.loop"), bench.MODES["smoke"])
    rows = {row.key: row for row in result.rows}
    assert rows["fetch_add"].status == "error"
    assert rows["fetch_add"].verdict == "error: BenchCheckError: fetch_add(1) counted every call"
    assert rows["lock_locked"].status == "baseline"


def test_a_crashed_timing_process_fails_its_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "_CHILD", "import sys; sys.exit(3)")
    groups = bench.select_groups(["alloc.switch"])
    report = bench.run(bench.MODES["smoke"], groups)
    (g,) = report["groups"]
    assert [row["status"] for row in g["rows"]] == ["error", "error"]
    assert g["rows"][0]["verdict"] == "error: the timing process exited with code 3"
    assert report["summary"]["error"] == 2


# ---- verdicts ----------------------------------------------------------------------------------------


def evaluate(group_key: str, medians: dict[str, float]) -> dict[str, bench.RowResult]:
    g = cases.group(group_key)
    rows = {c.key: bench.RowResult(c.key, c.label, c.baseline, median_ns=medians.get(c.key)) for c in g.cases}
    bench._evaluate(g, rows)
    return rows


def test_verdicts_name_the_bar_and_say_whether_it_is_met() -> None:
    rows = evaluate("cell.borrow_mut", {"lock": 100.0, "refcell": 80.0, "pyrefcell": 400.0})
    assert rows["lock"].verdict == "baseline"
    assert rows["refcell"].status == "meets"
    assert rows["refcell"].verdict == "meets bars (<= 1.0x; >= 4x faster than pure-Python RefCell: 5.00x)"
    assert rows["pyrefcell"].verdict == "info" and rows["pyrefcell"].ratio == 4.0

    rows = evaluate("cell.borrow_mut", {"lock": 100.0, "refcell": 120.0, "pyrefcell": 360.0})
    assert rows["refcell"].status == "misses"
    assert rows["refcell"].verdict == ("misses bar (<= 1.0x; >= 4x faster than pure-Python RefCell: 3.00x)")

    rows = evaluate("cell.borrow_mut", {"lock": 100.0, "refcell": 80.0, "pyrefcell": 300.0})
    assert rows["refcell"].verdict == "misses bar (>= 4x faster than pure-Python RefCell: 3.75x); meets <= 1.0x"

    rows = evaluate("alloc.workload", {"untracked": 100.0, "counting": 116.0, "limit": 119.0})
    assert rows["counting"].verdict == "over bar (<= 1.15x)"
    assert rows["limit"].verdict == "meets bar (<= 1.2x)"
    assert rows["tracemalloc"].verdict == "info"

    rows = evaluate("atomic.loop", {"lock_locked": 10.0, "fetch_add": 15.0, "with_lock": 45.0})
    assert rows["with_lock"].verdict == "misses bar (>= 4x slower than a.fetch_add(1): 3.00x)"


def test_a_row_without_its_baseline_has_nothing_to_compare_with() -> None:
    rows = evaluate("layout.soa", {"soa": 10.0})
    assert rows["soa"].ratio is None and rows["soa"].verdict == "info (nothing to compare with)"


@pytest.mark.parametrize(
    ("bar", "ratio", "met", "text"),
    [
        (cases.at_most(1.15), 1.15, True, "<= 1.15x"),
        (cases.at_most(1.15), 1.16, False, "<= 1.15x"),
        (cases.faster(4), 0.25, True, ">= 4x faster"),
        (cases.faster(4), 0.26, False, ">= 4x faster"),
        (cases.slower(4, "x"), 4.0, True, ">= 4x slower than X"),
        (cases.slower(4, "x"), 3.9, False, ">= 4x slower than X"),
    ],
)
def test_bar(bar: cases.Bar, ratio: float, met: bool, text: str) -> None:
    assert bar.met(ratio) is met
    assert bar.describe("X" if bar.against else None) == text


# ---- one source of truth ------------------------------------------------------------------------------


def test_every_group_is_also_a_pytest_benchmark() -> None:
    if not BENCHMARKS.is_dir():
        pytest.skip("not a source checkout")
    text = "\n".join(p.read_text() for p in sorted(BENCHMARKS.glob("test_bench_*.py")))
    for g in cases.GROUPS:
        assert f'case_params("{g.key}")' in text, g.key
    assert "def run(" not in text  # the timed bodies live in memkit/_bench/


def test_pure_python_refcell_follows_the_borrow_rule() -> None:
    cell = PyRefCell(1)
    with cell.borrow_mut() as g:
        g.value += 1
        with pytest.raises(PyBorrowError):
            cell.borrow_mut()
    with pytest.raises(ValueError, match="released"):
        _ = g.value
    assert cell.borrow_mut().value == 2
