"""Pure-PyTorch reference of multi-scale deformable attention (MSDeformAttn).

The ground truth every compiled backend is tested against. Correct in float64.

Sampling convention: bilinear, pixel centres at (i + 0.5), zeros outside the map, i.e.
``grid_sample(align_corners=False, padding_mode='zeros')`` with locations in [0, 1] mapped to [-1, 1].

References:
    Zhu et al., "Deformable DETR", ICLR 2021 (the op's definition).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def ms_deform_attn_reference(value: torch.Tensor, spatial_shapes: torch.Tensor,
                             level_start_index: torch.Tensor, sampling_locations: torch.Tensor,
                             attention_weights: torch.Tensor) -> torch.Tensor:
    """Multi-scale deformable attention, reference implementation.

    Args:
        value: (N, S, M, D) values of all levels, flattened and concatenated.
        spatial_shapes: (L, 2) int64, (H, W) of each level; sum(H*W) == S.
        level_start_index: (L,) int64, offset of each level in S (unused here, kept for the API).
        sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y) in [0, 1].
        attention_weights: (N, Lq, M, L, P), usually softmax-normalised over (L, P).

    Returns:
        (N, Lq, M * D)
    """
    del level_start_index
    n, _, m, d = value.shape
    _, lq, _, n_levels, n_points, _ = sampling_locations.shape
    sizes = [int(h) * int(w) for h, w in spatial_shapes.tolist()]
    value_list = value.split(sizes, dim=1)
    grids = 2 * sampling_locations - 1
    sampled = []
    for lvl, (h, w) in enumerate(spatial_shapes.tolist()):
        # (N, H*W, M, D) -> (N*M, D, H, W)
        v = value_list[lvl].flatten(2).transpose(1, 2).reshape(n * m, d, int(h), int(w))
        # (N, Lq, M, P, 2) -> (N*M, Lq, P, 2)
        g = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
        sampled.append(F.grid_sample(v, g, mode='bilinear', padding_mode='zeros', align_corners=False))
    # (N*M, D, Lq, L, P) weighted by (N*M, 1, Lq, L, P)
    attn = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, n_levels, n_points)
    out = (torch.stack(sampled, dim=-2) * attn).sum((-1, -2))
    return out.view(n, m * d, lq).transpose(1, 2).contiguous()
