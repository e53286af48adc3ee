"""Runs memkit's fuzz harnesses one after another and reports executions and findings.

    python fuzz/run.py                      # CI: a fixed number of runs each, fixed seed
    python fuzz/run.py --seconds 150        # a campaign: 150 s per harness
    python fuzz/run.py --harness slotmap --seconds 600 --keep-corpus
    python fuzz/run.py --replay             # every corpus input once (under ASan: see below)

Fuzzing starts from each harness's committed seed corpus (fuzz/corpus/<harness>/, read
only here) and writes the new inputs it finds to a scratch corpus (build/fuzz/<harness>/,
emptied first unless --keep-corpus). A finding - an uncaught exception, a failed model
check, a crash or a sanitizer report - leaves its input in build/fuzz/artifacts/ and makes
this script exit 1. Reproduce one with `python fuzz/fuzz_<harness>.py <that file>`.

Coverage guidance needs libFuzzer's own coverage hooks, which a preloaded AddressSanitizer
runtime replaces (atheris warns, and stops finding new inputs). So fuzz against a plain
build, then --replay the seed and scratch corpora - every input once - under the
ASan+UBSan build, with the LD_PRELOAD and ASAN_OPTIONS the test suite uses
(docs/reliability.md): memory errors that did not crash the plain build show up there.

The harnesses import the memkit that `import memkit` finds, except that a source tree
with an in-place build (`python setup.py build_ext --inplace`) is put first, so a
developer fuzzes the tree (--installed turns that off).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from glob import glob

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HARNESSES = ("arena", "pool", "cell", "slotmap", "layout", "atomic")

# libFuzzer flags every run shares. len_control=0: operation sequences need long inputs
# from the start. rss_limit: the harnesses stay far below it; a leak or runaway does not.
COMMON_FLAGS = ["-len_control=0", "-max_len=2048", "-rss_limit_mb=4096", "-print_final_stats=1"]


def environment(installed: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not installed and glob(os.path.join(ROOT, "memkit", "_core*.so")):
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def describe_memkit(env: dict[str, str]) -> str:
    code = "import memkit, memkit._core as c; print(memkit._core.__file__, '|', c.info.BUILD['sanitizers'])"
    # From fuzz/, where no memkit package is: the same import the harnesses make.
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def run_one(name: str, args: argparse.Namespace, env: dict[str, str]) -> tuple[bool, int, int, float]:
    """Runs one harness; returns (clean, executions, exec/s, seconds)."""
    scratch = os.path.join(ROOT, "build", "fuzz", name)
    artifacts = os.path.join(ROOT, "build", "fuzz", "artifacts")
    if not args.keep_corpus and not args.replay:
        shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch, exist_ok=True)
    os.makedirs(artifacts, exist_ok=True)
    if args.replay:
        budget = ["-runs=0"]  # the corpora's inputs, once each, and nothing new
    elif args.seconds:
        budget = [f"-max_total_time={args.seconds}"]
    else:
        budget = [f"-runs={args.runs}"]
    cmd = [
        sys.executable,
        os.path.join(HERE, f"fuzz_{name}.py"),
        *COMMON_FLAGS,
        f"-seed={args.seed}",
        *budget,
        f"-artifact_prefix={artifacts}{os.sep}{name}-",
        scratch,  # the first directory receives new inputs
        os.path.join(HERE, "corpus", name),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=HERE, capture_output=True, text=True, errors="replace")
    elapsed = time.monotonic() - start
    log = proc.stdout + proc.stderr
    with open(os.path.join(ROOT, "build", "fuzz", f"{name}.log"), "w") as f:
        f.write(log)
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    done = re.search(r"Done (\d+) runs in (\d+) second", log)
    # libFuzzer's own rate (whole seconds); for short runs, executions over wall time.
    runs = int(executed.group(1)) if executed else 0
    speed = int(done.group(1)) // int(done.group(2)) if done and int(done.group(2)) >= 10 else int(runs / elapsed)
    clean = proc.returncode == 0 and "Uncaught Python exception" not in log and "ERROR:" not in log
    if not clean:
        # The finding's traceback or sanitizer report: from the first report line on.
        lines = log.splitlines()
        marks = ("=== Uncaught Python exception", "ERROR: ", "runtime error:", "WARNING: ThreadSanitizer")
        first = next((i for i, ln in enumerate(lines) if any(m in ln for m in marks)), max(len(lines) - 40, 0))
        print("\n".join(lines[first : first + 60]), file=sys.stderr)
    return clean, runs, speed, elapsed


def merge(name: str, env: dict[str, str]) -> int:
    """Folds the scratch corpus into the seed corpus, keeping only inputs that add coverage.

    libFuzzer's merge re-runs the harness as a program, so the harnesses are executable
    (`#!/usr/bin/env python3`) and this interpreter's directory goes first on PATH.
    """
    seeds = os.path.join(HERE, "corpus", name)
    merged = seeds + ".merging"
    shutil.rmtree(merged, ignore_errors=True)
    os.makedirs(merged)
    env = dict(env, PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""))
    cmd = [
        os.path.join(HERE, f"fuzz_{name}.py"),
        *COMMON_FLAGS,
        "-merge=1",
        merged,
        seeds,
        os.path.join(ROOT, "build", "fuzz", name),
    ]
    proc = subprocess.run(cmd, env=env, cwd=HERE, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return proc.returncode
    shutil.rmtree(seeds, ignore_errors=True)
    os.rename(merged, seeds)
    print(f"fuzz_{name:8} seed corpus: {len(os.listdir(seeds))} inputs", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harness", action="append", choices=HARNESSES, help="run only these (repeatable)")
    parser.add_argument("--runs", type=int, default=4000, help="inputs per harness (default 4000)")
    parser.add_argument("--seconds", type=int, default=0, help="time per harness instead of a run count")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer's random seed (default 1)")
    parser.add_argument("--keep-corpus", action="store_true", help="keep build/fuzz/<harness>/ between runs")
    parser.add_argument(
        "--replay", action="store_true", help="run every input of the seed and scratch corpora once, nothing new"
    )
    parser.add_argument(
        "--merge", action="store_true", help="fold build/fuzz/<harness>/ into fuzz/corpus/<harness>/ (minimized)"
    )
    parser.add_argument(
        "--installed", action="store_true", help="fuzz the installed memkit even in a tree with an in-place build"
    )
    args = parser.parse_args()

    env = environment(args.installed)
    if args.merge:
        return max((merge(name, env) for name in args.harness or HARNESSES), default=0)
    print(f"memkit under test: {describe_memkit(env)}", flush=True)
    total_exec, total_time, failed = 0, 0.0, []
    for name in args.harness or HARNESSES:
        clean, executed, speed, elapsed = run_one(name, args, env)
        total_exec += executed
        total_time += elapsed
        verdict = "clean" if clean else "FINDING"
        print(f"fuzz_{name:8} {executed:8d} executions  {speed:6d} exec/s  {elapsed:6.1f} s  {verdict}", flush=True)
        if not clean:
            failed.append(name)
    print(f"fuzz total    {total_exec:8d} executions in {total_time:.0f} s; findings in: {', '.join(failed) or 'none'}")
    # The plain closing line CI reads: one "test" per harness.
    print(f"{len(args.harness or HARNESSES) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
