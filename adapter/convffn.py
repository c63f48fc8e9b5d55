"""ConvFFN: the extractor's feed-forward network with a depth-wise 3x3 conv applied per scale.

References:
    Chen et al., "ViT-Adapter", ICLR 2023, Sec. 3.3 (ConvFFN, ratio 0.25); Wang et al., "PVTv2" (conv FFN).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from .norm import get_act


class DWConv(nn.Module):
    """One depth-wise 3x3 conv shared by all scales, applied to each scale's map separately."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor, shapes: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """x: (B, sum(h*w), D) tokens of the maps ``shapes`` concatenated -> same shape."""
        b, _, d = x.shape
        # split, not slices: the backward of a split is one cat, that of each slice a full-size zero tensor
        parts = x.split([h * w for h, w in shapes], dim=1)
        outs = [self.dwconv(t.transpose(1, 2).reshape(b, d, h, w)).flatten(2).transpose(1, 2)
                for t, (h, w) in zip(parts, shapes)]
        return torch.cat(outs, dim=1)


class ConvFFN(nn.Module):
    """fc1 -> depth-wise 3x3 conv per scale -> act -> fc2.

    Args:
        dim: channels C.
        hidden: hidden channels (``int(C * 0.25)`` in the paper).
        act: activation name.
    """

    def __init__(self, dim: int, hidden: int, act: str = 'GELU'):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = get_act(act)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, shapes: Sequence[Tuple[int, int]]) -> torch.Tensor:
        """x: (B, sum(h*w), C) -> (B, sum(h*w), C)."""
        return self.fc2(self.act(self.dwconv(self.fc1(x), shapes)))
