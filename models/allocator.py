"""Keep freed activation memory for the next batch instead of handing it back to the kernel.

glibc serves each allocation above its mmap threshold (128 KiB, raised adaptively) with a fresh
mmap, and returns a heap top above the trim threshold to the kernel. A forward pass at batch
256-1024 allocates activations of 0.5-16 MB each, so by default every batch maps fresh pages
and faults them in again: 2,000-20,000 minor page faults per forward at batch 1024 (C=8,
T=64), measured (it depends on how glibc's adaptive threshold has moved), and at most a few
hundred after this call. In a process that only loads a model and scores, as a server does,
batch 256 ran 1.9x and batch 1024 1.5x faster (`python -m bench.profile`). Training at batch 64
is unaffected (its tensors are small).

The cost is that the process keeps up to the trim threshold of freed memory mapped (RSS), which
a scoring server reuses on the next request anyway. It keeps it per malloc arena, and glibc
gives each new thread its own: every threadpool worker that ever scored held its own copy of a
batch's working set, and a server's RSS stepped up by ~20 MB whenever one more worker first
scored (`bench.throughput` memory: +1.1 to +6.4 % after the first 10 k windows, end 352-354
MB, 5 runs). One arena for the process keeps one copy (+0.2 to +1.7 %, end 335-339 MB, 4 runs); the
arena lock cost HTTP batch-256 throughput about 5 % (2 alternated runs, two client threads).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def reuse_freed_memory(mmap_threshold_mb: int = 32, trim_threshold_mb: int = 128,
                       arenas: int = 1) -> bool:
    """Raise glibc's mmap and trim thresholds for this process and cap its arenas (threads
    created later share them); False where libc is not glibc (macOS, musl), which keep their
    own allocator behaviour. 32 MiB, the ceiling of glibc's own
    adaptive threshold on 64-bit, is above any activation of the default model at batch 1024."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold_mb << 20)
                and libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold_mb << 20)
                and libc.mallopt(_M_ARENA_MAX, arenas))
