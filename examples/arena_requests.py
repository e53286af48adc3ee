"""A request handler with a per-request arena: scratch memory freed all at once per request.

An ingest service receives requests that carry a batch of float32 sensor samples. The
handler reads each body from its stream straight into arena memory (`readinto`),
smooths the samples into a second scratch buffer, builds the binary response in a third,
and copies only the response out. Every scratch buffer comes from `arena.scope()`, which
frees them together when the request ends - Rust's `bumpalo::Bump` with a `reset()` per
request. After the first request the arena reuses one chunk, so steady-state requests
never touch the allocator for scratch memory.

The sharp edge: a view of scratch memory that outlives the request pins it. The last
request stashes a memoryview in a debug cache; ending its scope raises `BufferError` and
frees nothing, instead of leaving the cache pointing into freed memory.

    python examples/arena_requests.py
"""

from __future__ import annotations

import io
import struct

import memkit

REQUEST_HEADER = struct.Struct("<4sII")  # magic, sensor id, sample count
RESPONSE = struct.Struct("<4sIIff")  # magic, sensor id, sample count, mean, peak of the smoothed signal
WINDOW = 4


def make_request(sensor: int, samples: list[float]) -> bytes:
    return REQUEST_HEADER.pack(b"INGS", sensor, len(samples)) + struct.pack(f"<{len(samples)}f", *samples)


def handle(stream: io.BufferedIOBase, arena: memkit.Arena, debug_views: list[memoryview[float]] | None = None) -> bytes:
    magic, sensor, count = REQUEST_HEADER.unpack(stream.read(REQUEST_HEADER.size))
    if magic != b"INGS":
        raise ValueError(f"not an ingest request: {magic!r}")
    with arena.scope() as scratch:  # everything allocated inside is freed when the request ends
        body = scratch.alloc(4 * count, align=64, zero=False)  # overwritten by readinto right away
        if stream.readinto(body) != 4 * count:
            raise ValueError("truncated request body")
        smoothed = scratch.alloc(4 * count, align=64, zero=False)
        response = scratch.alloc(RESPONSE.size)
        # Casting a memoryview is an export: each `with` releases it before the scope ends.
        with memoryview(body).cast("f") as raw, memoryview(smoothed).cast("f") as out:
            running = 0.0
            for i in range(count):  # a moving average over the last WINDOW samples
                running += raw[i] - (raw[i - WINDOW] if i >= WINDOW else 0.0)
                out[i] = running / min(i + 1, WINDOW)
            mean, peak = sum(out) / count, max(out)
            if debug_views is not None:
                debug_views.append(out[:])  # BUG: a view of scratch memory kept past the request
        RESPONSE.pack_into(response, 0, b"RESP", sensor, count, mean, peak)
        return bytes(response)  # the only thing that leaves the request: a copy


def main() -> None:
    arena = memkit.Arena(chunk_size=64 * 1024)
    peaks = []
    for n in range(200):
        samples = [float((n + i) % 17) for i in range(64 + n % 64)]
        reply = handle(io.BytesIO(make_request(n, samples)), arena)
        _, sensor, count, _, peak = RESPONSE.unpack(reply)
        assert (sensor, count) == (n, len(samples))
        peaks.append(peak)
        assert arena.allocation_count == 0  # the scope freed the request's scratch buffers
    print(f"200 requests handled, highest smoothed peak {max(peaks):.2f}")
    print(f"arena: {arena.chunk_count} chunk of {arena.bytes_reserved:,} bytes, reused by every request")

    debug_views: list[memoryview[float]] = []
    try:
        handle(io.BytesIO(make_request(999, [1.0, 2.0, 3.0])), arena, debug_views)
    except BufferError as exc:
        print(f"a view kept past its request: {exc}")
    assert arena.depth == 1  # the scope refused to end, and freed nothing
    for view in debug_views:
        print(f"  the stashed view still reads valid memory: {view.tolist()}")
        view.release()
    arena.reset()  # with the view gone, the leaked scope can be freed
    assert arena.depth == 0 and arena.allocation_count == 0


if __name__ == "__main__":
    main()
