"""The memkit command line: ``python -m memkit <command>``.

Commands:
    info    what was built, how, and the machine it runs on
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence


def _cmd_info(args: argparse.Namespace) -> int:
    from . import _info

    facts = _info.collect()
    if args.json:
        print(json.dumps(facts, indent=2))
    else:
        print(_info.format_table(facts))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m memkit``."""
    parser = argparse.ArgumentParser(
        prog="python -m memkit",
        description="memkit: Rust's memory and ownership tools for Python.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    commands.required = True
    info = commands.add_parser(
        "info",
        help="show the build, the Python build, cache line, page size and huge-page mode",
        description="Show how memkit was built and the facts about this machine it relies on.",
    )
    info.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    info.set_defaults(run=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
