"""Multi-scale feature extractor: SPM tokens attend to ViT tokens, then a ConvFFN.

References:
    Chen et al., "ViT-Adapter", ICLR 2023, Sec. 3.3, Eqs. (3)-(4).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from .attention import build_cross_attention
from .convffn import ConvFFN
from .norm import NormSpec, get_token_norm
from .vit import DropPath


class Extractor(nn.Module):
    """q = query + attn(query_norm(query), feat_norm(feat)); q + drop_path(ffn(ffn_norm(q))).

    Args:
        dim: channels C.
        n_heads: attention heads.
        n_levels: key levels (1: the ViT's 1/16 map).
        attn_type: 'deformable' | 'global' | 'cswin' | 'pale'.
        n_points: deformable sampling points.
        ratio: deformable value ratio.
        cffn_ratio: ConvFFN hidden ratio (0.25); 0 disables the ConvFFN.
        drop_path: stochastic depth on the ConvFFN branch.
        token_norm: norm name ('LN').
        stripe_width: cswin/pale lines per group.
    """

    def __init__(self, dim: int, n_heads: int = 6, n_levels: int = 1, attn_type: str = 'deformable',
                 n_points: int = 4, ratio: float = 1.0, cffn_ratio: float = 0.25, drop_path: float = 0.0,
                 token_norm: NormSpec = 'LN', stripe_width: int = 2):
        super().__init__()
        self.query_norm = get_token_norm(token_norm, dim)
        self.feat_norm = get_token_norm(token_norm, dim)
        self.attn = build_cross_attention(attn_type, dim, n_heads, n_levels, n_points, ratio, stripe_width)
        if cffn_ratio > 0:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio))
            self.ffn_norm = get_token_norm(token_norm, dim)
            self.drop_path = DropPath(drop_path)
        else:
            self.ffn = None

    def forward(self, query: torch.Tensor, query_shapes: Sequence[Tuple[int, int]], feat: torch.Tensor,
                feat_shapes: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """query: SPM tokens (B, S, C) of ``query_shapes``; feat: ViT tokens (B, N, C) -> (B, S, C)."""
        query = query + self.attn(self.query_norm(query), query_shapes, self.feat_norm(feat), feat_shapes)
        if self.ffn is not None:
            query = query + self.drop_path(self.ffn(self.ffn_norm(query), query_shapes))
        return query
