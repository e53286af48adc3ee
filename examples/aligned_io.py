"""Read a file into page-aligned memory without copying, then look at it with NumPy.

Page-aligned buffers are what O_DIRECT reads, DMA engines and aligned SIMD loads need;
`readinto` fills the buffer in place, and the NumPy view shares the same memory.

    python examples/aligned_io.py
"""

from __future__ import annotations

import os
import tempfile

import memkit


def main() -> None:
    page = 4096
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "samples.bin")
        with open(path, "wb") as f:
            f.write(bytes(range(256)) * 64)  # 16 KiB

        size = os.path.getsize(path)
        with memkit.AlignedBuffer(size, align=page) as buf:
            with open(path, "rb", buffering=0) as raw:
                assert raw.readinto(buf) == size
            print(f"read {len(buf)} bytes at {buf.address:#x} (page-aligned: {buf.address % page == 0})")
            try:
                import numpy as np
            except ImportError:
                print("NumPy not installed; skipping the array view")
                return
            samples = np.frombuffer(memoryview(buf), dtype=np.uint8)
            print(f"mean byte value: {samples.mean():.1f}")
            del samples  # the array holds an export: the with block could not release otherwise


if __name__ == "__main__":
    main()
