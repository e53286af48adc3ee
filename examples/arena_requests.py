"""Per-request scratch memory from an Arena, and I/O buffers from a BufferPool.

Each "request" reads a payload into a pooled buffer, then parses it into scratch buffers
carved from an arena scope that frees them all at once when the request ends. NumPy views
of scratch memory pin the scope: ending it while one is alive raises BufferError.

    python examples/arena_requests.py
"""

from __future__ import annotations

import io
import struct

import memkit


def handle(request: bytes, pool: memkit.BufferPool, arena: memkit.Arena) -> int:
    with pool.acquire(len(request), zero=False) as payload:
        io.BytesIO(request).readinto(payload)
        with arena.scope() as scratch:
            count = struct.unpack_from("<I", payload, 0)[0]
            values = scratch.alloc(4 * count, align=64)
            memoryview(values)[:] = memoryview(payload)[4 : 4 + 4 * count]
            return sum(memoryview(values).cast("I"))


def main() -> None:
    pool = memkit.BufferPool(size_classes=(4096, 65536))
    arena = memkit.Arena(chunk_size=16 * 1024)
    total = 0
    for n in range(1, 200):
        request = struct.pack(f"<I{n}I", n, *range(n))
        total += handle(request, pool, arena)
    print(f"sum of sums: {total}")
    print(f"pool: {pool.hits} hits, {pool.misses} misses, {pool.cached_bytes} bytes cached")
    print(f"arena: {arena.chunk_count} chunk(s), {arena.bytes_reserved} bytes reserved, {arena.allocation_count} live")


if __name__ == "__main__":
    main()
