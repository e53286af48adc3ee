"""Workloads shared by ``benchmarks/`` and ``python -m memkit bench`` (one source of truth).

Private: names and sizes may change between versions.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DICT_JSON_RECORDS", "dict_json_workload"]

DICT_JSON_RECORDS = 20_000


def dict_json_workload(records: int = DICT_JSON_RECORDS) -> int:
    """The allocation-heavy workload of the allocator-hook benchmarks.

    Builds ``records`` small dicts holding lists and strings, ``json.dumps`` them,
    ``json.loads`` the text back and groups the records into a dict of lists - roughly 45
    allocations and as many frees per record, nearly all through pymalloc. Returns the
    number of groups.
    """
    rows = [
        {"id": i, "name": f"user{i}", "tags": [f"t{i % 7}", f"g{i % 13}"], "score": i * 0.5} for i in range(records)
    ]
    text = json.dumps(rows)
    back: list[dict[str, Any]] = json.loads(text)
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in back:
        groups.setdefault(row["tags"][0], []).append(row)
    return len(groups)
