"""Pure-PyTorch reference of multi-scale deformable attention (MSDeformAttn).

The ground truth every compiled backend is tested against. Correct in float64.

Sampling convention: bilinear, pixel centres at (i + 0.5), zeros outside the map, i.e.
``grid_sample(align_corners=False, padding_mode='zeros')`` with locations in [0, 1] mapped to [-1, 1].

References:
    Zhu et al., "Deformable DETR", ICLR 2021 (the op's definition).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

from ._levels import check_level_table


def ms_deform_attn_reference(value: torch.Tensor, spatial_shapes: torch.Tensor,
                             level_start_index: torch.Tensor, sampling_locations: torch.Tensor,
                             attention_weights: torch.Tensor) -> torch.Tensor:
    """Multi-scale deformable attention, reference implementation.

    Args:
        value: (N, S, M, D) values of all levels, flattened and concatenated.
        spatial_shapes: (L, 2) int64, (H, W) of each level; sum(H*W) == S.
        level_start_index: (L,) int64, offset of each level in S (only checked here).
        sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y) in [0, 1].
        attention_weights: (N, Lq, M, L, P), usually softmax-normalised over (L, P).

    Dtypes: float64 / float32 values take locations and weights of their own dtype. float16 / bfloat16 values
    take float32 locations and weights (recommended: bf16 resolves only 0.5 px on a 128-pixel map) or their own
    dtype; they are computed in float32 (sampling, weighting and the sum over levels and points, forward and
    backward: autograd runs through the casts) and the output is rounded once to the value dtype. Gradients come
    back in each input's own dtype.

    Returns:
        (N, Lq, M * D) in the dtype of value.

    Raises:
        ValueError: the level table is inconsistent (H or W <= 0, H*W or the sum beyond int64, sum != S,
            wrong start offsets); checked with exact Python ints (skipped while tracing).

    Non-finite inputs (the semantics every backend follows; ``tests/ops/test_robustness.py`` checks it):
        * a sampling location whose x or y is NaN or +-inf makes the output of its (query, head) NaN in every
          channel, whatever its attention weight (``grid_sample`` gives that point NaN bilinear weights);
        * a point outside the map whose attention weight is NaN or +-inf does too (weight * zero sample);
        * gradients (finite ``grad_output``): such a point adds nothing to the value gradient; its attention
          weight gradient is NaN; its x gradient is NaN when y, its weight or ``grad_output`` is non-finite and
          0 otherwise, and its y gradient likewise with x (``grid_sample``'s backward weighs the corners of d/dx
          by y distances). Other points' gradients are unaffected.
        * finite locations so large that the coordinate arithmetic overflows count as infinite (float32:
          |x| * W beyond about 3.4e38; the reference also when |x| > 1.7e38, where ``2 * x - 1`` overflows).
        * with D = 0 channels the output is empty and every gradient is zero.
    """
    out_dtype = value.dtype
    if value.dtype in (torch.float16, torch.bfloat16):
        # fp32 accumulation; the casts are differentiable, so backward accumulates in fp32 as well.
        value = value.float()
    compute = value.dtype
    sampling_locations = sampling_locations.to(compute)
    attention_weights = attention_weights.to(compute)
    s = value.shape[1]
    shapes = spatial_shapes.tolist()
    if not torch.compiler.is_compiling():  # exact Python ints: a ValueError naming the level, also for H*W > int64
        check_level_table(shapes, level_start_index.tolist(), s)
    out = ms_deform_attn_grid_sample(value, [(int(h), int(w)) for h, w in shapes], sampling_locations,
                                     attention_weights)
    return out.to(out_dtype)


def ms_deform_attn_grid_sample(value: torch.Tensor, level_shapes: Sequence[Tuple[int, int]],
                               sampling_locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """The op as one ``F.grid_sample`` per level and a weighted sum: the reference's core, and the export form.

    Shapes come as Python ints, so a traced graph (``torch.export``, ONNX) holds only standard ops: Split,
    Reshape/Transpose, GridSample (bilinear, zeros padding, align_corners=False; ONNX opset >= 16), Mul, ReduceSum.
    No checks and no casts: the caller gives value, locations and weights in one float dtype.

    Args:
        value: (N, S, M, D), S = sum(H * W) over ``level_shapes``.
        level_shapes: [(H, W), ...] per level, Python ints.
        sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y), in [0, 1] inside the map.
        attention_weights: (N, Lq, M, L, P).

    Returns:
        (N, Lq, M * D).
    """
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in level_shapes], dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(level_shapes):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode='bilinear', padding_mode='zeros', align_corners=False))
    # (N*M, D, Lq, L, P) weighted by (N*M, 1, Lq, L, P)
    attn = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels, n_points)
    out = (torch.stack(sampled, dim=-2) * attn).sum((-1, -2))
    return out.view(n, m * d, lq).transpose(1, 2).contiguous()
