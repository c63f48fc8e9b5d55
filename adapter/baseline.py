"""Simple multi-scale outputs of a plain ViT (the paper's ViT baseline, N = 0).

The outputs of the last block of each quarter are normalised and resampled to strides 4, 8, 16, 32: two
2x2 transposed convs (with a norm and activation between), one 2x2 transposed conv, identity, 2x2 max-pool.

References:
    Li et al., "Benchmarking Detection Transfer Learning with Vision Transformers", 2021 (arXiv:2111.11429);
    Chen et al., "ViT-Adapter", ICLR 2023 (the ViT-T/S/B/L baselines of Tables 1-3).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
from torch import nn

from .norm import NormSpec, get_act, get_norm, get_token_norm
from .upsample import Upsample2x


class SimplePyramid(nn.Module):
    """Four stride-16 maps -> strides 4, 8, 16, 32 with the same width.

    Args:
        dim: channels C.
        up_norm: norm between the two transposed convs of the stride-4 branch ('GN').
        act: activation name there ('GELU').
        token_norm: norm applied to each level's tokens first ('LN').
    """

    def __init__(self, dim: int, up_norm: NormSpec = 'GN', act: str = 'GELU', token_norm: NormSpec = 'LN'):
        super().__init__()
        self.norms = nn.ModuleList([get_token_norm(token_norm, dim) for _ in range(4)])
        self.up4 = nn.Sequential(Upsample2x(dim, dim), get_norm(up_norm, dim), get_act(act), Upsample2x(dim, dim))
        self.up8 = Upsample2x(dim, dim)
        self.down32 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """feats: 4 maps (B, C, H/16, W/16) -> [(B,C,H/4,W/4), (.., H/8), (.., H/16), (.., H/32)]."""
        maps = [n(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(f.shape)
                for n, f in zip(self.norms, feats)]
        return [self.up4(maps[0]), self.up8(maps[1]), maps[2], self.down32(maps[3])]
