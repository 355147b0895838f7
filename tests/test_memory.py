"""The ingest's memory release really hands freed heap pages back to the OS (glibc)."""

from __future__ import annotations

import ctypes

import pytest

from assistant.memory import _malloc_trim, release_freed_memory


def resident_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(_malloc_trim() is None, reason="no glibc malloc_trim here")
def test_freed_heap_inside_the_arena_is_returned():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(1024) for _ in range(100_000)]  # ~100 MB of small chunks in the heap
    for block in blocks[:-1]:
        libc.free(block)  # the last one stays, so glibc cannot shrink the heap's top by itself
    held = resident_mb()
    assert release_freed_memory() is True
    released = held - resident_mb()
    libc.free(blocks[-1])
    assert released > 50, f"only {released:.0f} MB of ~100 MB freed went back to the OS"
