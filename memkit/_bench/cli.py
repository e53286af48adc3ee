"""``python -m memkit bench``: every memkit operation beside the alternative, timed interleaved.

The rows and the timed callables are :mod:`memkit._bench`'s (the same ones
``benchmarks/`` hands to pytest-benchmark). This module times them and prints the table:

- Each group's rows are timed **interleaved**: every round times each row once, in an
  order shuffled from round to round, so a burst of load from another process lands on
  all rows of a group alike, and no row always runs right after the same other row. A
  row's time is the median over its rounds; ratios divide medians of the same rounds,
  which makes them far steadier than timing one row after the other.
- A round of a row calls its callable ``number`` times, ``number`` chosen so that a round
  lasts about 0.3 ms (``Mode.round_ns``; some groups ask for longer) with
  ``time.perf_counter_ns``; groups of long single-threaded rounds time the process's CPU
  time instead (``Group.timer``).
- A run has a time budget, split between its groups by weight; a group runs rounds until
  its share is spent, between the mode's minimum and maximum number of rounds.
- Groups that need a clean process (the allocator hook: once installed, its layer stays in
  the allocator chain) run in a child interpreter.

Private: the JSON schema is documented in docs/cli.md; everything else may change.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any, TextIO

from .. import _bench as cases
from .._version import __version__

SCHEMA = 1


@dataclass(frozen=True)
class Mode:
    """How long and how big: ``full`` (the default), ``quick``, and ``smoke`` (tests only)."""

    name: str
    seconds_per_weight: float
    """The time budget of a group of weight 1; a run gets the sum over its groups, and each
    group its weight's share of what is left when it starts."""
    round_ns: int
    """The aim for one round of one row: the callable is repeated until it takes this long.
    Short rounds matter on a busy machine: a round the scheduler preempts is an outlier the
    median drops, and the shorter the rounds, the fewer are preempted."""
    min_rounds: int
    max_rounds: int
    sparse_samples: int
    """Rounds of the rows marked sparse (tracemalloc on the workload: ~10x slower)."""
    scale: float
    """Multiplies the groups' counts; below 1 only for smoke runs, whose times mean nothing."""


MODES: dict[str, Mode] = {
    "full": Mode("full", 2.2, 300_000, 5, 5000, 3, 1.0),
    "quick": Mode("quick", 0.4, 200_000, 3, 1000, 1, 1.0),
    "smoke": Mode("smoke", 0.0, 0, 1, 1, 1, 0.01),
}


@dataclass
class BarResult:
    """One bar of a row, evaluated."""

    text: str
    against: str
    ratio: float
    met: bool


@dataclass
class RowResult:
    """One row of the table (``median_ns``: per call of the timed callable)."""

    key: str
    label: str
    baseline: bool
    status: str = "info"
    verdict: str = "info"
    median_ns: float | None = None
    per_op_ns: float | None = None
    ratio: float | None = None
    samples: int = 0
    bars: list[BarResult] = field(default_factory=list)
    note: str | None = None


@dataclass
class GroupResult:
    """One comparison of the table."""

    key: str
    area: str
    area_name: str
    title: str
    op: str
    ops: int
    rounds: int
    seconds: float
    note: str
    rows: list[RowResult]
    timer: str = "wall"

    @staticmethod
    def from_json(data: dict[str, Any]) -> GroupResult:
        rows = [RowResult(**{**r, "bars": [BarResult(**b) for b in r["bars"]]}) for r in data["rows"]]
        return GroupResult(**{**data, "rows": rows})


# ---- progress -----------------------------------------------------------------------------------------


class Progress:
    """One line per group on stderr: ``memkit bench [ 3/21] Arena: ...`` (then its time)."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self._open = False

    def start(self, index: int, g: cases.Group, params: cases.Params) -> None:
        width = len(str(self.total))
        line = f"memkit bench [{index:>{width}}/{self.total}] {cases.AREAS[g.area]}: {g.describe(params)}"
        tty = self.stream.isatty()
        self.stream.write(line + ("" if tty else "\n"))
        self.stream.flush()
        self._open = tty

    def done(self, result: GroupResult) -> None:
        if self._open:
            rounds = f"{result.rounds} round{'s' if result.rounds != 1 else ''}"
            self.stream.write(f"  ({result.seconds:.1f} s, {rounds})\n")
            self.stream.flush()
            self._open = False


# ---- timing ------------------------------------------------------------------------------------------


TIMERS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}
"""``Group.timer`` -> the clock: elapsed time, or the CPU time of the process (all its
threads: memray's writer thread counts)."""


def _time_calls(prep: cases.Prepared, number: int, collect: bool, timer: Callable[[], int]) -> float:
    """Nanoseconds per call of ``prep.body`` over ``number`` calls (one round of one row)."""
    if collect:
        gc.collect()
    body = prep.body
    with prep.context if prep.context is not None else nullcontext():
        start = timer()
        for _ in repeat(None, number):
            body()
        end = timer()
    return (end - start) / number


def _first_call(prep: cases.Prepared, collect: bool, timer: Callable[[], int]) -> float:
    """Call ``prep.body`` once and check what it did; its nanoseconds (a warm-up, mostly)."""
    if collect:
        gc.collect()
    with prep.context if prep.context is not None else nullcontext():
        start = timer()
        result = prep.body()
        end = timer()
        if prep.check is not None:
            prep.check(result)
    return float(end - start)


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def measure_group(g: cases.Group, mode: Mode, rounds: int | None = None, budget_s: float | None = None) -> GroupResult:
    """Time ``g``'s rows interleaved and evaluate their ratios and bars.

    ``budget_s``: the group's time (default: its weight times the mode's seconds per
    weight); ``rounds``: exactly this many rounds instead.
    """
    started = time.perf_counter()
    params = g.scaled(mode.scale)
    rows = {c.key: RowResult(c.key, c.label, c.baseline) for c in g.cases}
    samples: dict[str, list[float]] = {c.key: [] for c in g.cases}
    prepared: dict[str, cases.Prepared] = {}
    done = 0  # interleaved rounds run

    def fail(key: str, exc: BaseException) -> None:
        rows[key].status, rows[key].note = "error", _describe_error(exc)
        prepared.pop(key, None)

    def set_up(c: cases.Case) -> None:
        missing = cases.missing_modules(c.requires)
        if missing:
            rows[c.key].status, rows[c.key].note = "skipped", f"{', '.join(missing)} not installed"
            return
        try:
            prepared[c.key] = c.setup(params)
        except Exception as exc:
            fail(c.key, exc)

    try:
        for c in g.cases:
            set_up(c)
        # Warm up and check every row, and find how many calls make a round of the wanted length.
        round_target = (g.round_ns or mode.round_ns) if mode.round_ns else 0
        timer = TIMERS[g.timer]
        shuffle = random.Random(len(g.cases)).shuffle
        number: dict[str, int] = {}
        estimate: dict[str, float] = {}
        for c in g.cases:
            if c.key not in prepared:
                continue
            try:
                first = _first_call(prepared[c.key], g.collect, timer)
                if c.sparse:
                    samples[c.key].append(first)
                elif first < round_target:
                    first = min(_time_calls(prepared[c.key], 1, False, timer) for _ in range(3))
            except Exception as exc:
                fail(c.key, exc)
                continue
            estimate[c.key] = max(first, 1.0)
            number[c.key] = max(1, min(100_000, math.ceil(round_target / estimate[c.key])))
        dense = [c.key for c in g.cases if c.key in number and not c.sparse]
        sparse = [c.key for c in g.cases if c.key in number and c.sparse]
        if budget_s is None:
            budget_s = g.weight * mode.seconds_per_weight
        # Rounds run until the group's time is up (setup and warm-up count against it), so a
        # busy machine gets fewer rounds rather than a longer run; a fixed `rounds` overrides.
        deadline = started + budget_s
        round_ns = sum(estimate[k] * number[k] for k in dense) or 1.0
        planned = rounds or max(mode.min_rounds, int((deadline - time.perf_counter()) * 1e9 / round_ns))
        extra = max(0, mode.sparse_samples - 1)  # the warm-up call was the sparse rows' first round
        sparse_rounds = {int((i + 0.5) * planned / extra) for i in range(extra)} if extra else set()
        limit = rounds or mode.max_rounds
        while done < limit:
            order = dense + [k for k in sparse if done in sparse_rounds]
            shuffle(order)  # each row follows each other one: no row always inherits one row's leftovers
            for key in order:
                if key not in prepared:
                    continue
                try:
                    samples[key].append(_time_calls(prepared[key], number[key], g.collect, timer))
                except Exception as exc:
                    fail(key, exc)
            done += 1
            if not rounds and done >= mode.min_rounds and time.perf_counter() >= deadline:
                break
    finally:
        for prep in prepared.values():
            if prep.cleanup is not None:
                prep.cleanup()
    ops = params[g.ops] if g.ops else 1
    for key, row in rows.items():
        if row.status in ("skipped", "error") or not samples[key]:
            continue
        row.samples = len(samples[key])
        row.median_ns = statistics.median(samples[key])
        row.per_op_ns = row.median_ns / ops
    _evaluate(g, rows)
    return GroupResult(
        key=g.key,
        area=g.area,
        area_name=cases.AREAS[g.area],
        title=g.describe(params),
        op=g.op,
        ops=ops,
        rounds=done,
        seconds=round(time.perf_counter() - started, 3),
        note=g.note,
        rows=list(rows.values()),
        timer=g.timer,
    )


# ---- verdicts -----------------------------------------------------------------------------------------


def _bar_text(bar: cases.Bar, ratio: float, against_label: str | None) -> str:
    text = bar.describe(against_label)
    if bar.kind == "faster":
        return f"{text}: {1 / ratio:.2f}x" if ratio > 0 else text
    if bar.kind == "slower" or against_label:
        return f"{text}: {ratio:.2f}x"
    return text


def _evaluate(g: cases.Group, rows: dict[str, RowResult]) -> None:
    """Fill in ratios, bars, statuses and verdicts (medians are known)."""
    base = rows[g.baseline.key]
    for c in g.cases:
        row = rows[c.key]
        if row.median_ns is not None and base.median_ns:
            row.ratio = row.median_ns / base.median_ns
        if row.status == "skipped":
            row.verdict = f"skipped: {row.note}"
            continue
        if row.status == "error":
            row.verdict = f"error: {row.note}"
            continue
        if c.baseline:
            row.status, row.verdict = "baseline", "baseline"
            continue
        if not c.bars:
            row.status, row.verdict = "info", "info"
            continue
        met: list[str] = []
        missed: list[str] = []
        kinds_missed: set[str] = set()
        for bar in c.bars:
            other = rows[bar.against or g.baseline.key]
            if row.median_ns is None or not other.median_ns:
                continue
            ratio = row.median_ns / other.median_ns
            label = other.label if bar.against else None
            text = _bar_text(bar, ratio, label)
            ok = bar.met(ratio)
            row.bars.append(BarResult(bar.describe(label), other.key, ratio, ok))
            (met if ok else missed).append(text)
            if not ok:
                kinds_missed.add(bar.kind)
        if not met and not missed:
            row.status, row.verdict = "info", "info (nothing to compare with)"
        elif not missed:
            row.status = "meets"
            row.verdict = f"meets bar{'s' if len(met) > 1 else ''} ({'; '.join(met)})"
        else:
            row.status = "misses"
            word = "over bar" if kinds_missed == {"at_most"} else "misses bar"
            row.verdict = f"{word} ({'; '.join(missed)})" + (f"; meets {'; '.join(met)}" if met else "")


# ---- running groups ----------------------------------------------------------------------------------


def _package_root() -> str:
    """The directory the running memkit package was imported from (the one holding memkit/)."""
    return str(Path(__file__).resolve().parents[2])


_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from memkit._bench.cli import child_main; sys.exit(child_main(sys.argv[2]))"
)


def _run_isolated(
    groups: list[cases.Group], mode: Mode, rounds: int | None, seconds: float, first: int, total: int
) -> list[GroupResult]:
    """Time ``groups`` in a fresh interpreter (same Python, same memkit); progress on our stderr."""
    spec = {
        "groups": [g.key for g in groups],
        "mode": mode.name,
        "rounds": rounds,
        "seconds": seconds,
        "first": first,
        "total": total,
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, _package_root(), json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return [GroupResult.from_json(d) for d in json.loads(proc.stdout)]
    results = []
    for g in groups:
        note = f"the timing process exited with code {proc.returncode}"
        rows = [RowResult(c.key, c.label, c.baseline, "error", f"error: {note}", note=note) for c in g.cases]
        title = g.describe(g.scaled(mode.scale))
        results.append(GroupResult(g.key, g.area, cases.AREAS[g.area], title, g.op, 0, 0, 0.0, g.note, rows))
    return results


def child_main(spec_json: str) -> int:
    """The child interpreter's side of :func:`_run_isolated`: JSON results on stdout."""
    spec = json.loads(spec_json)
    groups = [cases.group(key) for key in spec["groups"]]
    progress = Progress(spec["total"])
    results = _measure_all(
        groups, MODES[spec["mode"]], spec["rounds"], spec["seconds"], progress, spec["first"], isolate=False
    )
    sys.stdout.write(json.dumps([asdict(results[g.key]) for g in groups]))
    return 0


def _share(left: float, weight: float, pending_weight: float, mode: Mode) -> float:
    """Seconds for groups of ``weight`` out of ``pending_weight``: their share of the time
    ``left``, but at least half their planned time - a group that overran (a busy machine)
    must not leave the groups after it with a round or two each."""
    return max(left * weight / pending_weight, 0.5 * weight * mode.seconds_per_weight)


def _measure_all(
    groups: list[cases.Group],
    mode: Mode,
    rounds: int | None,
    seconds: float,
    progress: Progress,
    first: int,
    isolate: bool,
) -> dict[str, GroupResult]:
    """Time ``groups`` in ``seconds`` in all: each group gets its weight's share of the time
    still left, so a group that overran (a busy machine) shortens the ones after it."""
    end = time.perf_counter() + seconds
    results: dict[str, GroupResult] = {}
    pending = list(groups)
    index = first
    while pending:
        g = pending[0]
        left = max(0.0, end - time.perf_counter())
        weight = sum(x.weight for x in pending)
        if isolate and g.isolated:
            batch = [x for x in pending if x.isolated]
            share = _share(left, sum(x.weight for x in batch), weight, mode)
            for r in _run_isolated(batch, mode, rounds, share, index, progress.total):
                results[r.key] = r
            pending = [x for x in pending if not x.isolated]
            index += len(batch)
            continue
        progress.start(index, g, g.scaled(mode.scale))
        results[g.key] = measure_group(g, mode, rounds, _share(left, g.weight, weight, mode))
        progress.done(results[g.key])
        pending.pop(0)
        index += 1
    return results


def select_groups(filters: Sequence[str] | None) -> list[cases.Group]:
    """The groups whose area key or group key is among ``filters`` (all when None or empty)."""
    if not filters:
        return list(cases.GROUPS)
    wanted = {f.strip().lower() for item in filters for f in item.split(",") if f.strip()}
    known = set(cases.AREAS) | {g.key for g in cases.GROUPS}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(
            f"unknown area {', '.join(map(repr, unknown))}; choose from {', '.join(cases.AREAS)} "
            "(or a group key such as arena.alloc)"
        )
    return [g for g in cases.GROUPS if g.area in wanted or g.key in wanted]


def _load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages, or None where the OS keeps none."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - not on Linux
        return None


def run(
    mode: Mode, groups: list[cases.Group], rounds: int | None = None, stream: TextIO | None = None
) -> dict[str, Any]:
    """Time ``groups``; the report as a JSON-ready dict (see docs/cli.md for the schema)."""
    from .._info import python_build

    started = time.perf_counter()
    load_start = _load_average()
    progress = Progress(len(groups), stream)
    seconds = mode.seconds_per_weight * sum(g.weight for g in groups)
    results = _measure_all(groups, mode, rounds, seconds, progress, 1, isolate=True)
    ordered = [results[g.key] for g in groups]
    all_rows = [row for r in ordered for row in r.rows]
    summary: dict[str, Any] = {
        status: sum(row.status == status for row in all_rows)
        for status in ("baseline", "meets", "misses", "info", "skipped", "error")
    }
    summary["missed"] = [
        f"{r.area_name}: {row.label} ({row.verdict})" for r in ordered for row in r.rows if row.status == "misses"
    ]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "schema": SCHEMA,
        "memkit": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "python_build": python_build(),
        "platform": platform.platform(),
        "cpus": cpus,
        "mode": mode.name,
        "elapsed_s": round(time.perf_counter() - started, 2),
        "load_average": {"start": load_start, "end": _load_average()},
        "areas": {g.area: cases.AREAS[g.area] for g in groups},
        "groups": [asdict(r) for r in ordered],
        "summary": summary,
    }


# ---- the table -----------------------------------------------------------------------------------------


def format_time(ns: float | None) -> str:
    """``21.9 ns``, ``3.41 us``, ``65.2 ms``, ``1.20 s``."""
    if ns is None:
        return "-"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            value = ns / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{ns:.3g} ns" if ns < 100 else f"{ns:.0f} ns"


def format_table(report: dict[str, Any]) -> str:
    """The report as the text table ``python -m memkit bench`` prints."""
    load = report["load_average"]
    load_text = (
        f"load average {load['start'][0]:.2f} at start, {load['end'][0]:.2f} at end"
        if load["start"] and load["end"]
        else "load average unknown"
    )
    lines = [
        f"memkit {report['memkit']} bench ({report['mode']}): {report['implementation']} {report['python']} "
        f"({report['python_build']}), {report['cpus']} CPUs, {load_text}, {report['elapsed_s']:.1f} s",
        "Rows of a group are timed interleaved, round by round; time = median per operation;",
        "ratio = row / the group's baseline (lower is faster). A bar is the target set when the",
        "feature was built. Other load on the machine moves single ratios by 10-20%: rerun close calls.",
    ]
    busy = max(load["start"][0], load["end"][0]) if load["start"] and load["end"] else 0.0
    if report["cpus"] and busy >= report["cpus"]:
        lines.append(f"WARNING: the machine was busy (load average up to {busy:.1f} on {report['cpus']} CPUs): other")
        lines.append("processes took CPU time and memory bandwidth mid-run, so ratios can be far off; rerun later.")
    width = max(
        [len(row["label"]) for g in report["groups"] for row in g["rows"]] + [30],
    )
    for g in report["groups"]:
        lines.append("")
        rounds = f"{g['rounds']} round{'s' if g['rounds'] != 1 else ''}"
        clock = ", CPU time" if g["timer"] == "cpu" else ""
        lines.append(f"{g['area_name']}: {g['title']}  [per {g['op']}, {rounds}{clock}]")
        for row in g["rows"]:
            ratio = f"{row['ratio']:.2f}x" if row["ratio"] is not None else "-"
            lines.append(f"  {row['label']:<{width}}  {format_time(row['per_op_ns']):>9}  {ratio:>7}  {row['verdict']}")
        if g["note"]:
            lines.append(f"  note: {g['note']}")
    s = report["summary"]
    lines.append("")
    lines.append(
        f"bars: {s['meets']} met, {s['misses']} missed; {s['info']} rows for information, "
        f"{s['skipped']} skipped, {s['error']} failed"
    )
    lines.extend(f"  missed - {m}" for m in s["missed"])
    return "\n".join(lines)


# ---- the command --------------------------------------------------------------------------------------


def command(args: argparse.Namespace, error: Callable[[str], object]) -> int:
    """Run ``python -m memkit bench`` with parsed ``args``; the exit code."""
    try:
        groups = select_groups(args.filter)
    except ValueError as exc:
        error(f"argument --filter: {exc}")
        return 2
    if args.rounds is not None and args.rounds < 1:
        error("argument --rounds: must be at least 1")
        return 2
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    report = run(mode, groups, args.rounds)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
    else:
        sys.stdout.write(format_table(report) + "\n")
    sys.stdout.flush()
    return 1 if report["summary"]["error"] else 0
