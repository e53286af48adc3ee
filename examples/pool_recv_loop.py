"""A socket receive loop that reads every message into a pooled buffer, without allocating.

A sender thread writes length-prefixed messages of mixed sizes into one end of a
`socket.socketpair()`; the receive loop reads each header into a small reused buffer,
takes a `PooledBuffer` of the message's size from a `BufferPool`, fills it with
`recv_into` (the kernel writes straight into the pooled memory, in as many partial reads
as the socket needs), checks it, and gives it back. After the first few messages every
buffer comes from the pool's cache: the loop stops paying the allocator. A message
larger than the largest size class is allocated exactly and never cached.

`acquire(n, zero=False)` skips zeroing because recv_into overwrites all n bytes; the loop
refuses a short message instead of processing an earlier message's leftover bytes.

    python examples/pool_recv_loop.py
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import zlib

from memkit import BufferPool, PooledBuffer

HEADER = struct.Struct("!II")  # payload length, CRC-32 of the payload
SIZES = (512, 3000, 4096, 9000, 60_000)  # a 200_000-byte message comes last
MESSAGES = 300


def send_messages(sock: socket.socket, payloads: list[bytes]) -> None:
    with sock:
        for payload in payloads:
            sock.sendall(HEADER.pack(len(payload), zlib.crc32(payload)) + payload)


def recv_exactly(sock: socket.socket, buf: PooledBuffer | bytearray) -> bool:
    """Fill `buf` completely; False if the peer closed the connection first."""
    with memoryview(buf) as view:  # the view is released on exit, so the buffer can go back
        got = 0
        while got < len(view):
            n = sock.recv_into(view[got:])
            if n == 0:
                return False
            got += n
    return True


def receive_loop(sock: socket.socket, pool: BufferPool) -> tuple[int, int]:
    header = bytearray(HEADER.size)  # one small buffer, reused for every header
    messages = received = 0
    while recv_exactly(sock, header):
        length, crc = HEADER.unpack(header)
        with pool.acquire(length, zero=False) as payload:  # len(payload) == length
            if not recv_exactly(sock, payload):
                raise ConnectionError(f"peer closed in the middle of a {length}-byte message")
            if zlib.crc32(payload) != crc:  # zlib reads the pooled memory in place
                raise ValueError(f"message {messages}: checksum mismatch")
            messages, received = messages + 1, received + length
        # leaving the with block gave the buffer back to the pool for the next message
    return messages, received


def main() -> None:
    rng = random.Random(7)
    payloads = [rng.randbytes(rng.choice(SIZES)) for _ in range(MESSAGES)] + [rng.randbytes(200_000)]
    pool = BufferPool(size_classes=(4096, 65536), max_cached_bytes=1 << 20)
    receiver, sender = socket.socketpair()
    thread = threading.Thread(target=send_messages, args=(sender, payloads))
    with receiver:
        thread.start()
        try:
            messages, received = receive_loop(receiver, pool)
        finally:
            receiver.shutdown(socket.SHUT_RDWR)  # a sender blocked on a full socket fails instead of hanging
            thread.join()
    assert messages == len(payloads) and received == sum(map(len, payloads))
    print(f"received {messages} messages, {received:,} bytes")
    print(f"pool: {pool.hits} hits, {pool.misses} misses (new buffers), {pool.outstanding} outstanding")
    print(f"cached: {pool.cached_bytes:,} bytes in classes {pool.size_classes}")
    assert pool.outstanding == 0 and pool.misses <= 4


if __name__ == "__main__":
    main()
