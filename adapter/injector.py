"""Spatial feature injector: ViT tokens attend to the SPM pyramid; the result is scaled by gamma (init 0).

References:
    Chen et al., "ViT-Adapter", ICLR 2023, Sec. 3.3, Eq. (1): F_vit + gamma * Attention(norm(F_vit), norm(F_sp)).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from .attention import build_cross_attention
from .norm import NormSpec, get_token_norm


class Injector(nn.Module):
    """query + gamma * attn(query_norm(query), feat_norm(feat)).

    Args:
        dim: channels C.
        n_heads: attention heads.
        n_levels: key levels (3: the SPM's 1/8, 1/16, 1/32 maps).
        attn_type: 'deformable' | 'global' | 'cswin' | 'pale'.
        n_points: deformable sampling points.
        ratio: deformable value ratio.
        init_gamma: initial value of the per-channel output scale (0: the ViT is untouched at start).
        token_norm: norm of query and keys ('LN').
        stripe_width: cswin/pale lines per group.
    """

    def __init__(self, dim: int, n_heads: int = 6, n_levels: int = 3, attn_type: str = 'deformable',
                 n_points: int = 4, ratio: float = 1.0, init_gamma: float = 0.0, token_norm: NormSpec = 'LN',
                 stripe_width: int = 2):
        super().__init__()
        self.query_norm = get_token_norm(token_norm, dim)
        self.feat_norm = get_token_norm(token_norm, dim)
        self.attn = build_cross_attention(attn_type, dim, n_heads, n_levels, n_points, ratio, stripe_width)
        self.gamma = nn.Parameter(torch.full((dim,), float(init_gamma)))

    def forward(self, query: torch.Tensor, query_shapes: Sequence[Tuple[int, int]], feat: torch.Tensor,
                feat_shapes: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """query: ViT tokens (B, H/16*W/16, C); feat: SPM tokens (B, S, C) -> (B, H/16*W/16, C)."""
        attn = self.attn(self.query_norm(query), query_shapes, self.feat_norm(feat), feat_shapes)
        return query + self.gamma * attn
