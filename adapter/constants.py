"""Per-input-size constant tensors (level tables, reference points, RoPE tables), made once and reused.

Built afresh in every forward they cost a dozen small ops per call, and on CUDA a pageable host-to-device copy each
(host-blocking, and not allowed while a CUDA graph is being captured). The cached tensors are read-only inputs.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch

T = TypeVar('T')
CONSTANTS: dict = {}
#: entries kept before the cache starts over (a few input sizes, windows and dtypes per process)
MAX_ENTRIES = 256


def cached(key: tuple, build: Callable[[], T]) -> T:
    """``build()``, made once per ``key`` (what it depends on: shapes, device, dtype, ...) and reused.

    While tracing (torch.compile) it is built fresh, so the graph holds it as a constant. It is made as normal tensors
    even under ``torch.inference_mode()``: an inference tensor, cached by a first call at inference, could not be
    saved for backward by a later training step.
    """
    if torch.compiler.is_compiling():
        return build()
    hit = CONSTANTS.get(key)
    if hit is None:
        if len(CONSTANTS) >= MAX_ENTRIES:
            CONSTANTS.clear()
        with torch.inference_mode(False):
            hit = CONSTANTS[key] = build()
    return hit
