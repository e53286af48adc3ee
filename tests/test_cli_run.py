"""`python -m memkit run`: runs a script as `python script.py` would and reports its allocations."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from memkit import _run

PROBE = """
import json, sys
print(json.dumps({"argv": sys.argv, "name": __name__, "path0": sys.path[0]}))
"""


def write(path: Path, code: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


def memkit_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m memkit run ...`` in ``cwd`` (conftest.py makes it import the memkit under test)."""
    return subprocess.run(
        [sys.executable, "-m", "memkit", "run", *args], capture_output=True, text=True, check=False, cwd=cwd
    )


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Plain ``python ...``, to compare with."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=False, cwd=cwd)


def json_report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The ``--json -`` report: the last line of stdout."""
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def summary_number(stderr: str, label: str) -> int:
    match = re.search(rf"{label} ([\d,]+)", stderr)
    assert match, stderr
    return int(match.group(1).replace(",", ""))


# --- running the script as python would -------------------------------------------------


def test_script_sees_the_argv_name_and_path_python_gives_it(tmp_path: Path) -> None:
    write(tmp_path / "sub" / "probe.py", PROBE)
    args = ["sub/probe.py", "-x", "--flag", "value", "--", "--limit", "5", "--json", "-", "-h"]
    result = memkit_run(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"argv": args, "name": "__main__", "path0": str((tmp_path / "sub").resolve())}
    assert seen == json.loads(python(*args, cwd=tmp_path).stdout)


def test_options_before_the_script_are_memkits_and_double_dash_ends_them(tmp_path: Path) -> None:
    write(tmp_path / "probe.py", PROBE)
    result = memkit_run("--limit", "64 MiB", "--", "probe.py", "--limit", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["argv"] == ["probe.py", "--limit", "1"]
    assert "budget 64 MiB" in result.stderr


def test_modules_next_to_the_script_import(tmp_path: Path) -> None:
    write(tmp_path / "app" / "helper.py", "VALUE = 42\n")
    write(tmp_path / "app" / "main.py", "import helper\nprint(helper.VALUE)\n")
    result = memkit_run("app/main.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ("print('ok')", 0, None),
        ("import sys; sys.exit(3)", 3, None),
        ("import sys; sys.exit(None)", 0, None),
        ("import sys; sys.exit('bad input: x')", 1, "bad input: x\n"),
        ("raise SystemExit(True)", 1, None),
    ],
    ids=["end", "exit-3", "exit-none", "exit-message", "exit-true"],
)
def test_exit_code_is_pythons(tmp_path: Path, body: str, code: int, message: str | None) -> None:
    script = write(tmp_path / "s.py", body + "\n")
    result = memkit_run(str(script), cwd=tmp_path)
    plain = python(str(script), cwd=tmp_path)
    assert result.returncode == plain.returncode == code
    assert result.stdout == plain.stdout
    assert result.stderr.startswith(plain.stderr)  # the sys.exit message, then the summary
    if message is not None:
        assert plain.stderr == message
    assert "memkit run: " in result.stderr


def test_uncaught_exception_prints_pythons_traceback_then_the_summary(tmp_path: Path) -> None:
    script = write(
        tmp_path / "boom.py",
        """
        def parse(text):
            return int(text)

        try:
            parse("x")
        except ValueError as exc:
            raise RuntimeError("cannot parse the input") from exc
        """,
    )
    result = memkit_run(str(script), cwd=tmp_path)
    plain = python(str(script), cwd=tmp_path)
    assert result.returncode == plain.returncode == 1
    # Exactly python's text: the runner's own frames (memkit, runpy) are left out.
    assert plain.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.startswith(plain.stderr)
    assert "runpy" not in result.stderr and "memkit/_run.py" not in result.stderr
    assert "memkit run: " + str(script) + " exited with code 1 (RuntimeError)" in result.stderr


def test_keyboard_interrupt_prints_the_traceback_and_exits_130(tmp_path: Path) -> None:
    write(tmp_path / "ki.py", "def wait():\n    raise KeyboardInterrupt\n\nwait()\n")
    result = memkit_run("ki.py", cwd=tmp_path)
    assert result.returncode == 130
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert 'File "ki.py", line 2, in wait' in result.stderr
    assert "\nKeyboardInterrupt\n" in result.stderr
    assert "exited with code 130 (KeyboardInterrupt)" in result.stderr


@pytest.mark.parametrize("name", ["missing.py", "no/such/dir/missing.py"])
def test_missing_script_is_exit_code_2(tmp_path: Path, name: str) -> None:
    result = memkit_run(name, "arg", cwd=tmp_path)
    assert result.returncode == 2
    assert f"can't open file {str(tmp_path.resolve() / name)!r}: [Errno 2] No such file or directory" in result.stderr
    assert "allocations" not in result.stderr


def test_no_script_is_a_usage_error(tmp_path: Path) -> None:
    result = memkit_run(cwd=tmp_path)
    assert result.returncode == 2
    assert "required: script.py" in result.stderr


def test_non_daemon_threads_finish_before_the_counters_are_read(tmp_path: Path) -> None:
    write(
        tmp_path / "threads.py",
        """
        import threading, time
        kept = []
        def work():
            time.sleep(0.1)
            kept.append(bytearray(3_000_000))
        threading.Thread(target=work).start()
        """,
    )
    result = memkit_run("--json", "-", "threads.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json_report(result)["current_bytes"] >= 3_000_000


# --- the summary ----------------------------------------------------------------------------

KEEPS_5MB = """
data = bytearray(5_000_000)
words = [str(i) for i in range(1000)]
print("done")
"""


def test_summary_shows_counts_domains_and_the_histogram(tmp_path: Path) -> None:
    write(tmp_path / "keep.py", KEEPS_5MB)
    result = memkit_run("keep.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    err = result.stderr
    lines = err.splitlines()
    assert lines[0].startswith("memkit run: keep.py exited with code 0 after ")
    assert 10 <= len(lines) <= 25
    for column in ("allocations", "frees", "reallocs", "peak", "current", "total"):
        assert column in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[2:6]}
    assert list(rows) == ["all", "raw", "mem", "object"]
    allocations = {name: int(row[1].replace(",", "")) for name, row in rows.items()}
    assert allocations["all"] == allocations["raw"] + allocations["mem"] + allocations["object"]
    assert allocations["all"] >= 1000  # the list of strings
    current = summary_number(err, "current at exit")
    peak = summary_number(err, "peak")
    assert 5_000_000 <= current <= peak < 50_000_000
    assert summary_number(err, "total") >= peak
    # 5_000_001 bytes (with the bytearray's trailing NUL) is in the (4 MiB, 16 MiB] row.
    assert re.search(r"<= 16 MiB\s+[1-9]", err), err
    assert "budget" not in err


def test_summary_follows_a_failure_too(tmp_path: Path) -> None:
    write(tmp_path / "fail.py", "data = bytearray(2_000_000)\nraise ValueError('late')\n")
    result = memkit_run("fail.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.index("ValueError: late") < result.stderr.index("memkit run: fail.py exited with code 1")
    assert summary_number(result.stderr, "current at exit") >= 2_000_000  # the frame keeps it alive


# --- --json --------------------------------------------------------------------------------

COUNTERS = ("allocations", "frees", "reallocs", "current_bytes", "total_bytes")


def check_consistent(report: dict[str, Any]) -> None:
    """Exact relations between the totals and the domains."""
    domains = report["by_domain"]
    assert set(domains) == {"raw", "mem", "object"}
    for key in COUNTERS:
        assert report[key] == sum(d[key] for d in domains.values()), key
    merged: dict[int, int] = {}
    for d in domains.values():
        for upper, count in d["histogram"]:
            merged[upper] = merged.get(upper, 0) + count
    assert [list(pair) for pair in sorted(merged.items())] == report["histogram"]
    for d in (report, *domains.values()):
        uppers = [upper for upper, _ in d["histogram"]]
        assert uppers == sorted(uppers) and all(u & (u - 1) == 0 for u in uppers)
        assert all(count > 0 for _, count in d["histogram"])
        assert sum(count for _, count in d["histogram"]) == d["allocations"]
        assert d["allocations"] >= d["frees"]
        assert d["peak_bytes"] >= d["current_bytes"] >= 0
        assert d["total_bytes"] >= d["peak_bytes"]
    assert max(d["peak_bytes"] for d in domains.values()) <= report["peak_bytes"]
    assert report["peak_bytes"] <= sum(d["peak_bytes"] for d in domains.values())


def test_json_on_stdout_is_the_last_line_and_replaces_the_summary(tmp_path: Path) -> None:
    write(tmp_path / "keep.py", KEEPS_5MB)
    result = memkit_run("--json", "-", "keep.py", "a", "-b", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "done"
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == ""
    report = json_report(result)
    assert set(report) == {
        "script",
        "argv",
        "exit_code",
        "error",
        "elapsed_seconds",
        *COUNTERS,
        "peak_bytes",
        "histogram",
        "by_domain",
        "limit",
        "limit_exceeded",
    }
    assert report["script"] == "keep.py"
    assert report["argv"] == ["keep.py", "a", "-b"]
    assert (report["exit_code"], report["error"], report["limit"], report["limit_exceeded"]) == (0, None, None, None)
    check_consistent(report)
    assert report["current_bytes"] >= 5_000_000
    assert dict(report["histogram"]).get(8 * 1024 * 1024, 0) >= 1  # 5_000_001 bytes: (4 MiB, 8 MiB]
    assert report["allocations"] >= 1000


def test_json_file_is_written_where_the_path_pointed_before_the_script_ran(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    write(tmp_path / "move.py", "import os, sys\nos.chdir('elsewhere')\nprint('moved')\nsys.exit(3)\n")
    result = memkit_run("--json", "report.json", "move.py", cwd=tmp_path)
    assert result.returncode == 3
    assert result.stdout == "moved\n"
    assert result.stderr == ""
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["exit_code"], report["argv"], report["error"]) == (3, ["move.py"], None)
    check_consistent(report)


def test_json_names_the_uncaught_exception(tmp_path: Path) -> None:
    write(tmp_path / "fail.py", "raise LookupError('nope')\n")
    result = memkit_run("--json", "-", "fail.py", cwd=tmp_path)
    assert result.returncode == 1
    assert "LookupError: nope" in result.stderr
    report = json_report(result)
    assert report["exit_code"] == 1
    assert report["error"] == {"type": "LookupError", "message": "nope"}


def test_json_path_in_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    write(tmp_path / "ok.py", "print('ran')\n")
    result = memkit_run("--json", "no/such/dir/r.json", "ok.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "argument --json: no directory" in result.stderr
    assert result.stdout == ""  # checked before the script runs


def test_unwritable_json_path_falls_back_to_the_summary(tmp_path: Path) -> None:
    write(tmp_path / "ok.py", "print('ran')\n")
    (tmp_path / "taken").mkdir()
    result = memkit_run("--json", "taken", "ok.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == "ran\n"
    assert "cannot write the JSON report to taken" in result.stderr
    assert "memkit run: ok.py exited with code 0" in result.stderr


# --- --limit -------------------------------------------------------------------------------


def test_limit_exceeded_is_a_memory_limit_error_at_the_allocation(tmp_path: Path) -> None:
    write(tmp_path / "big.py", "small = [0] * 10\ndata = bytearray(10_000_000)\nprint('not reached')\n")
    result = memkit_run("--limit", "1MiB", "big.py", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    err = result.stderr
    assert err.startswith("Traceback (most recent call last):\n")
    assert 'File "big.py", line 2, in <module>\n    data = bytearray(10_000_000)\n' in err
    assert "memkit.alloc.MemoryLimitError: memory budget of 1048576 bytes exceeded" in err
    assert "During handling" not in err and "direct cause" not in err
    assert "budget exceeded: 1 MiB (1,048,576 B); refused a request of 9.5 MiB (10,000,001 B)" in err


def test_limit_in_the_json_report(tmp_path: Path) -> None:
    write(tmp_path / "big.py", "data = bytearray(10_000_000)\n")
    result = memkit_run("--limit", "1 MiB", "--json", "-", "big.py", cwd=tmp_path)
    assert result.returncode == 1
    report = json_report(result)
    assert report["exit_code"] == 1
    assert report["error"]["type"] == "memkit.alloc.MemoryLimitError"
    limit = report["limit"]
    assert limit["max_bytes"] == 1024 * 1024
    assert 0 < limit["peak_bytes"] <= limit["max_bytes"]
    exceeded = report["limit_exceeded"]
    assert exceeded["request"] >= 10_000_000
    assert exceeded["raised"] is True
    assert exceeded["net_bytes"] == limit["net_bytes"]
    check_consistent(report)
    assert report["peak_bytes"] < 10_000_000  # the refused block was never made


def test_limit_covers_the_scripts_threads(tmp_path: Path) -> None:
    write(
        tmp_path / "threaded.py",
        """
        import threading
        outcome = []
        def work():
            try:
                outcome.append(len(bytearray(10_000_000)))
            except MemoryError:
                outcome.append("refused")
        t = threading.Thread(target=work)
        t.start()
        t.join()
        print(outcome[0])
        """,
    )
    result = memkit_run("--limit", "2 MiB", "--json", "-", "threaded.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "refused"
    exceeded = json_report(result)["limit_exceeded"]
    assert exceeded["request"] >= 10_000_000
    assert exceeded["raised"] is False  # the script handled it


def test_script_that_catches_the_memory_error_carries_on(tmp_path: Path) -> None:
    write(
        tmp_path / "careful.py",
        """
        try:
            data = bytearray(10_000_000)
        except MemoryError:
            data = bytearray(100_000)
        print(len(data))
        """,
    )
    result = memkit_run("--limit", "1 MiB", "careful.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "100000\n"
    assert "budget exceeded: 1 MiB" in result.stderr
    assert "the script caught the MemoryError" in result.stderr


def test_generous_limit_changes_nothing(tmp_path: Path) -> None:
    write(tmp_path / "keep.py", KEEPS_5MB)
    result = memkit_run("--limit", "64 MiB", "--json", "-", "keep.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json_report(result)
    assert report["limit_exceeded"] is None
    assert report["limit"]["max_bytes"] == 64 * 1024 * 1024
    assert report["limit"]["peak_bytes"] >= 5_000_000
    summary = memkit_run("--limit", "64 MiB", "keep.py", cwd=tmp_path)
    assert re.search(r"budget 64 MiB \(67,108,864 B\): peak [\d.]+ MiB, within budget", summary.stderr)


@pytest.mark.parametrize("size", ["12 XB", "-5", "lots"])
def test_bad_limit_is_a_usage_error(tmp_path: Path, size: str) -> None:
    write(tmp_path / "ok.py", "print('ran')\n")
    result = memkit_run("--limit", size, "ok.py", cwd=tmp_path)
    assert result.returncode == 2
    assert "argument --limit: size must be" in result.stderr
    assert result.stdout == ""


def test_help_explains_run(tmp_path: Path) -> None:
    result = memkit_run("--help", cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for phrase in (
        "script.py [args ...]",
        "--limit SIZE",
        "--json PATH",
        "'-' prints it on stdout",
        "MemoryLimitError",
        "130 for KeyboardInterrupt",
        "options included",
    ):
        assert phrase in text
    top = subprocess.run(
        [sys.executable, "-m", "memkit", "--help"], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert "run a script like `python script.py`" in " ".join(top.stdout.split())


# --- in-process -----------------------------------------------------------------------------


def test_run_script_restores_argv_and_path(tmp_path: Path) -> None:
    script = write(tmp_path / "s.py", "import sys\nsys.path.insert(0, 'junk')\nsys.argv.append('x')\nx = [1] * 1000\n")
    argv, path = list(sys.argv), list(sys.path)
    report = _run.run_script(str(script), ["a"])
    assert (sys.argv, sys.path) == (argv, path)
    assert report.exit_code == 0 and report.outcome is None
    assert report.argv == [str(script), "a"]
    assert report.stats.allocations >= 1 and report.stats.peak_bytes >= 8000


def test_human_bytes() -> None:
    assert [_run.human_bytes(n) for n in (0, 1023, 1024, 1536, 5_000_000, 1 << 40, -2048)] == [
        "0 B",
        "1023 B",
        "1 KiB",
        "1.5 KiB",
        "4.8 MiB",
        "1 TiB",
        "-2 KiB",
    ]


def test_histogram_rows_merge_pairs_of_buckets_from_16_bytes() -> None:
    rows = _run._coarse_histogram({1: 2, 8: 3, 16: 1, 32: 4, 64: 5, 4096: 1})
    assert rows == [(16, 6), (64, 9), (256, 0), (1024, 0), (4096, 1)]
    assert _run._coarse_histogram({}) == []
