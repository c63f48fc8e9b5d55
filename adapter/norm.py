"""Normalisation and activation layers chosen by name (never written as literals in the model).

References:
    detectron2 ``layers/batch_norm.py::get_norm``; timm ``layers/create_norm.py`` (idea only).
"""
from __future__ import annotations

from typing import Callable, Union

import torch
from torch import nn

NormSpec = Union[str, Callable[[int], nn.Module], None]

NORM_NAMES = ('BN', 'SyncBN', 'GN', 'LN', 'none')
ACT_NAMES = ('GELU', 'ReLU', 'SiLU', 'none')


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over channels of a (B, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H, W)
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _gn_groups(channels: int, preferred: int = 32) -> int:
    for g in range(min(preferred, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


def get_norm(norm: NormSpec, channels: int) -> nn.Module:
    """Build a 2d normalisation layer for (B, C, H, W) maps.

    Args:
        norm: 'BN' | 'SyncBN' | 'GN' (32 groups, or the largest divisor of C below) | 'LN' (channels-last
            LayerNorm applied to the map) | 'none', or a callable ``f(channels) -> nn.Module``.
        channels: number of channels C.
    """
    if callable(norm) and not isinstance(norm, str):
        return norm(channels)
    if norm is None or norm == 'none':
        return nn.Identity()
    if norm == 'BN':
        return nn.BatchNorm2d(channels)
    if norm == 'SyncBN':
        return nn.SyncBatchNorm(channels)
    if norm == 'GN':
        return nn.GroupNorm(_gn_groups(channels), channels)
    if norm == 'LN':
        return LayerNorm2d(channels, eps=1e-6)
    raise ValueError(f'unknown norm {norm!r}; choose one of {NORM_NAMES} or pass a callable f(channels)')


def get_token_norm(norm: NormSpec, channels: int) -> nn.Module:
    """Build a normalisation layer for (B, N, C) token sequences ('LN' with eps 1e-6, as in ViT)."""
    if callable(norm) and not isinstance(norm, str):
        return norm(channels)
    if norm == 'LN':
        return nn.LayerNorm(channels, eps=1e-6)
    if norm is None or norm == 'none':
        return nn.Identity()
    raise ValueError(f'unknown token norm {norm!r}; token sequences support "LN", "none" or a callable')


def get_act(act: Union[str, Callable[[], nn.Module], None]) -> nn.Module:
    """Build an activation by name: 'GELU' | 'ReLU' | 'SiLU' | 'none', or a zero-argument callable."""
    if callable(act) and not isinstance(act, str):
        return act()
    table = {'GELU': nn.GELU, 'ReLU': nn.ReLU, 'SiLU': nn.SiLU, 'none': nn.Identity, None: nn.Identity}
    if act not in table:
        raise ValueError(f'unknown activation {act!r}; choose one of {ACT_NAMES} or pass a callable')
    return table[act]()
