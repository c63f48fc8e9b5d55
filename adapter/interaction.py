"""Interaction block: [inject or add] -> a slice of ViT blocks -> [extract].

The ViT is not forked: the block receives the ViT and the index range of its ``blocks`` to run.

References:
    Chen et al., "ViT-Adapter", ICLR 2023, Sec. 3.1 (N interactions splitting the ViT evenly), Table 8
    (component ablation: the "Add" interaction of variant 1).
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .extractor import Extractor
from .injector import Injector
from .vit import VisionTransformer

Shapes = Sequence[Tuple[int, int]]


class PriorAdd(nn.Module):
    """The ablation's "Add" interaction: SPM tokens resized to the ViT grid (bilinear), summed over levels and
    added to the ViT tokens, scaled by a per-channel gamma initialised to 0 (as the injector, so the pre-trained
    ViT is untouched at start). No attention.
    """

    def __init__(self, dim: int, init_gamma: float = 0.0):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_gamma)))

    def forward(self, query: torch.Tensor, query_shapes: Shapes, feat: torch.Tensor,
                feat_shapes: Shapes) -> torch.Tensor:
        """query: ViT tokens (B, h*w, C) of grid query_shapes[0]; feat: SPM tokens (B, S, C) -> (B, h*w, C)."""
        b, _, c = query.shape
        h, w = query_shapes[0]
        total, start = 0, 0
        for hk, wk in feat_shapes:
            m = feat[:, start:start + hk * wk].transpose(1, 2).reshape(b, c, hk, wk)
            total = total + F.interpolate(m, size=(h, w), mode='bilinear', align_corners=False)
            start += hk * wk
        return query + self.gamma * total.flatten(2).transpose(1, 2)


class InteractionBlock(nn.Module):
    """One interaction: ViT tokens get spatial priors, run ``vit.blocks[start:end]``, SPM tokens extract.

    Args:
        dim: channels C.
        n_heads: adapter attention heads.
        inject: 'attn' (injector), 'add' (PriorAdd) or None.
        extract: whether to run an extractor after the ViT blocks.
        attn_type, n_points, ratio, cffn_ratio, drop_path, init_gamma, stripe_width: see Injector/Extractor.
        with_cp: gradient checkpointing of the injector and extractor (training only).
    """

    def __init__(self, dim: int, n_heads: int = 6, inject: Optional[str] = 'attn', extract: bool = True,
                 attn_type: str = 'deformable', n_points: int = 4, ratio: float = 1.0, cffn_ratio: float = 0.25,
                 drop_path: float = 0.0, init_gamma: float = 0.0, stripe_width: int = 2, with_cp: bool = False):
        super().__init__()
        self.with_cp = with_cp
        if inject == 'attn':
            self.injector = Injector(dim, n_heads, 3, attn_type, n_points, ratio, init_gamma,
                                     stripe_width=stripe_width)
        elif inject == 'add':
            self.injector = PriorAdd(dim, init_gamma)
        elif inject is None:
            self.injector = None
        else:
            raise ValueError(f'InteractionBlock: inject must be "attn", "add" or None, got {inject!r}')
        self.extractor = Extractor(dim, n_heads, 1, attn_type, n_points, ratio, cffn_ratio, drop_path,
                                   stripe_width=stripe_width) if extract else None

    def _call(self, fn: nn.Module, *args):
        if self.with_cp and self.training and any(isinstance(a, torch.Tensor) and a.requires_grad for a in args):
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int], c: torch.Tensor, c_shapes: Shapes,
                vit: VisionTransformer, start: int, end: int, collect: Optional[list] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: ViT tokens (B, P + h*w, C), P prefix tokens (a class token) first; c: SPM tokens (B, S, C) of grids
        ``c_shapes`` -> updated (x, c).

        Prefix tokens go through the ViT blocks only: the injector updates the grid tokens, the prefix is put back
        in front for the blocks, and the extractor reads the grid tokens (the official BEiT-Adapter's
        ``InteractionBlockWithCls``)."""
        prefix, x = vit.split_prefix(x, hw)
        if self.injector is not None:
            x = self._call(self.injector, x, [hw], c, c_shapes)
        if prefix is not None:
            x = torch.cat([prefix, x], 1)
        x = vit.run_blocks(x, hw, start, end, collect)
        if self.extractor is not None:
            c = self._call(self.extractor, c, c_shapes, vit.split_prefix(x, hw)[1], [hw])
        return x, c
