"""The memkit command line: ``python -m memkit <command>``.

Commands:
    bench   time every memkit operation beside the alternative a user would pick (the main job)
    info    what was built, how, and the machine it runs on
    run     run a script with the allocator hook on and report what it allocated
    layout  print the layout of a memkit.layout struct: offsets, sizes, holes, padding
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO


def _cmd_info(args: argparse.Namespace) -> int:
    from . import _info

    facts = _info.collect()
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        print(_info.format_table(facts))
    return 0


def _size(text: str) -> int:
    """``--limit``'s type: bytes from ``"64 MiB"``, ``"1.5 GB"`` or ``"4096"``."""
    from .alloc import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _write_json(report: dict[str, Any], path: str, stdout: TextIO) -> None:
    """The report as one line of JSON, to ``path`` or (``-``) to ``stdout``."""
    line = json.dumps(report) + "\n"
    if path == "-":
        stdout.write(line)
        stdout.flush()
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(line)


def _cmd_run(args: argparse.Namespace) -> int:
    from . import _run

    # Where the report goes is fixed before the script runs: it may chdir or replace the streams.
    json_path = args.json if args.json in (None, "-") else os.path.abspath(args.json)
    stdout, stderr = sys.stdout, sys.stderr
    command = list(args.command)
    if command[:1] == ["--"]:  # `run -- script.py`: the usual end of the options
        command = command[1:]
    if not command:
        args.parser.error("the following arguments are required: script.py")
    if json_path not in (None, "-") and not os.path.isdir(os.path.dirname(json_path)):
        args.parser.error(f"argument --json: no directory {os.path.dirname(json_path)!r} to write {args.json!r} in")
    try:
        report = _run.run_script(command[0], command[1:], args.limit)
    except _run.ScriptNotFoundError as exc:
        print(f"python -m memkit run: {exc.strerror}", file=sys.stderr)
        return 2
    _run.report_exit(report)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken by the script: nothing left to flush
            pass
    if json_path is None:
        print(_run.format_summary(report), file=stderr)
        return report.exit_code
    try:
        _write_json(_run.report_to_json(report), json_path, stdout)
    except (OSError, ValueError) as exc:
        print(f"python -m memkit run: cannot write the JSON report to {args.json}: {exc}", file=stderr)
        print(_run.format_summary(report), file=stderr)
        return report.exit_code or 1
    return report.exit_code


def _load_struct(spec: str) -> Any:
    """The object ``module:Name`` (``Name`` may be dotted) names; ValueError saying why not."""
    import importlib

    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ValueError(f"expected module:Struct (like `geometry:Point`), got {spec!r}")
    # `python -m` puts the current directory first on sys.path; the `memkit` script does not.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from exc
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attr_path!r}") from None
    return obj


def _cmd_layout(args: argparse.Namespace) -> int:
    from . import layout

    try:
        cls = _load_struct(args.struct)
        text = layout.describe(cls)
    except (ValueError, TypeError) as exc:
        print(f"python -m memkit layout: {exc}", file=sys.stderr)
        return 2
    print(text)
    if args.optimize:
        order, saved = layout.optimize(cls)
        if saved:
            print(f"optimize: order {', '.join(order)} saves {saved} bytes ({layout.size_of(cls) - saved} total)")
        else:
            print("optimize: no order is smaller")
    return 0


_BENCH_AREAS = ("fastcall", "buffers", "arena", "pool", "atomic", "cell", "sync", "slotmap", "alloc", "layout")


def _bench_add_arguments(parser: argparse.ArgumentParser) -> None:
    """``bench``'s options (the areas are memkit._bench.AREAS; a test keeps them equal)."""
    parser.add_argument(
        "--json", action="store_true", help="print the report as one JSON object (progress stays on stderr)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds (under 20 seconds on a 2-core machine); the same sizes, noisier ratios",
    )
    parser.add_argument(
        "--filter",
        action="append",
        metavar="AREA",
        help=f"only these areas (repeat, or separate with commas): {', '.join(_BENCH_AREAS)}",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="exactly N interleaved rounds per group instead of a time budget (longer, steadier runs)",
    )
    # Tests only: one round at tiny sizes, to check the command works; its numbers mean nothing.
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)


def _cmd_bench(args: argparse.Namespace) -> int:
    from ._bench import cli as bench_cli

    try:
        return bench_cli.command(args, args.parser.error)
    except KeyboardInterrupt:
        print("python -m memkit bench: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m memkit``."""
    parser = argparse.ArgumentParser(
        prog="python -m memkit",
        description="memkit: Rust's memory and ownership tools for Python.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.required = True
    bench = commands.add_parser(
        "bench",
        help="time every memkit operation beside the alternative you would use, with ratios and verdicts",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Time each memkit operation beside the alternative a user would otherwise pick\n"
            "(builtins, bytearray, threading.Lock, a pure-Python RefCell, dict, ctypes,\n"
            "tracemalloc; NumPy, pyarrow, atomics and memray rows when they are installed) and\n"
            "print a table: the median time per operation, the ratio to the group's baseline\n"
            "and a verdict against the bar set when the feature was built. Rows of a group are\n"
            "timed interleaved, round by round. Progress goes to stderr. About a minute\n"
            "(--quick: under 20 seconds) on a 2-core machine."
        ),
        epilog=(
            "Verdicts: 'meets bar (...)', 'over bar (...)' / 'misses bar (...)', 'info' (a row\n"
            "without a bar), 'baseline', 'skipped: numpy not installed'. Exit code 0, or 1 when a\n"
            "row failed (its verdict says why). See docs/cli.md for the rows and the JSON schema."
        ),
    )
    _bench_add_arguments(bench)
    bench.set_defaults(run=_cmd_bench, parser=bench)
    info = commands.add_parser(
        "info",
        help="show the build, the Python build, cache line, page size and huge-page mode",
        description="Show how memkit was built and the facts about this machine it relies on.",
    )
    info.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    info.set_defaults(run=_cmd_info)
    run = commands.add_parser(
        "run",
        usage="%(prog)s [-h] [--limit SIZE] [--json PATH] script.py [args ...]",
        help="run a script like `python script.py` and report what it allocated",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run script.py as `python script.py args...` would (same sys.argv, the script's\n"
            "directory first on sys.path, run as __main__, same exit code) with memkit's\n"
            "allocator hook on, then report on stderr: allocations, frees, reallocs, peak,\n"
            "current bytes at exit and total bytes, per domain (raw, mem, object), and a\n"
            "histogram of allocation sizes."
        ),
        epilog=(
            "Everything after script.py goes to the script, options included:\n"
            "  python -m memkit run --limit '64 MiB' job.py --input data.csv -v\n"
            "\n"
            "Exit code: the script's (sys.exit(n); 1 for an uncaught exception or a\n"
            "sys.exit('message'); 130 for KeyboardInterrupt); 2 when the script cannot be\n"
            "opened or the options are wrong. Non-daemon threads are waited for, as python\n"
            "does, before the counters are read."
        ),
    )
    run.add_argument(
        "--limit",
        type=_size,
        metavar="SIZE",
        help=(
            "a memory budget for the whole script, all threads: bytes, or '64 MiB', '1.5 GB' "
            "(KiB/MiB/GiB powers of 1024, KB/MB/GB of 1000). An allocation past it fails with "
            "MemoryError, reported as memkit.alloc.MemoryLimitError (exit code 1)"
        ),
    )
    run.add_argument(
        "--json",
        metavar="PATH",
        help=(
            "write the report as one JSON object to PATH instead of the summary on stderr; "
            "'-' prints it on stdout as one line after the script's own output"
        ),
    )
    # One REMAINDER positional, split in _cmd_run: argparse then passes everything from the
    # script on verbatim, options and "--" included (a separate `script` positional would
    # swallow a "--" that follows it).
    run.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="script.py [args ...]",
        help="the script to run (a file, or a directory with __main__.py) and its arguments",
    )
    run.set_defaults(run=_cmd_run, parser=run)
    layout = commands.add_parser(
        "layout",
        help="print a memkit.layout struct's layout: offsets, sizes, holes and padding",
        description=(
            "Import MODULE (the current directory is searched first) and print describe() of "
            "its memkit.layout struct: each field's offset and size, the holes between them, "
            "trailing padding and the totals."
        ),
        epilog="Exit code 2 when the module cannot be imported or the name is not a struct.",
    )
    layout.add_argument(
        "struct", metavar="module:Struct", help="where the struct is, e.g. geometry:Point or pkg.mod:Outer.Inner"
    )
    layout.add_argument(
        "--optimize",
        action="store_true",
        help="also print the field order that minimises the size, and the bytes it saves",
    )
    layout.set_defaults(run=_cmd_layout)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
