"""Multiply-accumulates of one forward: dense ops counted by torch, plus the deformable sampling it cannot see.

FLOPs here are multiply-accumulates (the convention of mmcv / fvcore "FLOPs") of a forward at a given input size,
counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convs, transposed convs, SDPA incl. the CPU flash
kernel; divided by 2) plus the deformable sampling: 5 * D MACs per sampled point (4 bilinear corners + the attention
weight) per query, head, level and point. Norms, activations, softmax and resizes are not counted. With this counter
the Semantic FPN FLOPs of the paper's Table A4 are reproduced exactly (``python -m analysis.summary``).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch
from torch import nn

from .attention import DeformableCrossAttention


def backbone_flops(model: nn.Module, size: Tuple[int, int] = (512, 512),
                   call: Optional[Callable[[nn.Module, torch.Tensor], object]] = None) -> Dict[str, float]:
    """GMACs of one forward of ``model`` on a (1, 3, H, W) input: dense ops + deformable sampling.

    Args:
        model: Any module (a backbone, or a whole mm model with ``call``); it is put in eval mode.
        size: (H, W) of the input.
        call: ``call(model, x)`` runs the model (e.g. an mmseg model in 'tensor' mode); default ``model(x)``.

    Returns:
        ``dict(dense=..., sampling=..., total=...)`` in GMACs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    def sdpa(q, k, v, *_, out_shape=None, **__):  # torch counts SDPA only for its CUDA kernels
        b, h, sq, d = q
        return 2 * b * h * sq * k[-2] * (d + v[-1])
    cpu_sdpa = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa}
    sampling = [0]

    def hook(mod: DeformableCrossAttention, args, _out):
        query = args[0]
        d = int(mod.d_model * mod.ratio) // mod.n_heads
        sampling[0] += query.shape[0] * query.shape[1] * mod.n_heads * mod.n_levels * mod.n_points * 5 * d
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, DeformableCrossAttention)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as fc:
            x = torch.zeros(1, 3, *size)
            model.eval()
            call(model, x) if call is not None else model(x)
    finally:
        for h in handles:
            h.remove()
    dense = fc.get_total_flops() / 2
    return dict(dense=dense / 1e9, sampling=sampling[0] / 1e9, total=(dense + sampling[0]) / 1e9)
