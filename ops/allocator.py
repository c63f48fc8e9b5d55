"""CPU allocator setting for benchmarks and CPU training: keep large tensors' memory for reuse.

PyTorch's CPU tensors come from glibc ``malloc``. Blocks above glibc's mmap threshold (128 KiB, raised
dynamically up to 32 MiB) are fresh ``mmap`` regions, so every call that allocates a large output pays a page
fault per 4 KiB page on first touch, and every free returns the pages to the kernel. On the 2-core VMs of this
project that costs about 18 ms per 66 MiB (a 1024x1024, batch-2 ViT-Adapter-S value gradient), more than
the kernel itself; allocation + fill of 66 MiB: 20.5 ms with the default, 2.5 ms with
``tune_glibc_malloc()`` (fill alone: 2.0 ms).

``tune_glibc_malloc()`` sets ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (``mallopt``) so blocks up to
``threshold`` come from the heap and freed memory stays in the process for the next allocation of the
same size. This is the glibc equivalent of preloading jemalloc/tcmalloc, the usual advice for PyTorch on
CPU. Price: memory freed by the process is not returned to the OS until it exits, and the heap holds more
of it (a loop allocating 64 MiB blocks settles after about 8 rounds, reusing blocks from then on, at 738 MB
resident instead of 290 MB). It affects the whole
process, so the library never calls it on import: the benchmarks call it (``--malloc default`` opts out)
and users may call it at the start of a CPU job. The same setting without code:
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824``.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 1 << 30
_STATE = {'tuned': None}


def tune_glibc_malloc(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Keep blocks up to ``threshold`` bytes on the heap and freed memory in the process (glibc only).

    Returns True when glibc accepted both settings, False elsewhere (musl, macOS, Windows): nothing changes
    there and nothing fails.
    """
    if threshold <= 0:
        raise ValueError(f'tune_glibc_malloc: threshold must be a positive number of bytes, got {threshold}')
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        _STATE['tuned'] = False
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    threshold = min(threshold, 2 ** 31 - 1)
    ok = bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_TRIM_THRESHOLD, threshold))
    _STATE['tuned'] = ok
    return ok


def describe() -> str:
    """One line for benchmark headers: which allocator setting this process runs with."""
    if _STATE['tuned']:
        return 'glibc malloc tuned (ops.allocator.tune_glibc_malloc: mmap/trim threshold 1 GiB, freed memory reused)'
    if _STATE['tuned'] is False:
        return 'malloc not tunable here (not glibc): default allocator'
    return 'default glibc malloc (large blocks are fresh mmap regions: page faults on every large allocation)'
