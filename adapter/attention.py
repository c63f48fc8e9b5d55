"""Cross-attentions used inside the injector and extractor, all with one call signature.

``attn(query (B, Lq, C), query_shapes, feat (B, S, C), feat_shapes) -> (B, Lq, C)`` where ``query_shapes`` /
``feat_shapes`` list the (H, W) grids whose row-major tokens are concatenated in ``query`` / ``feat``.
Every query token has a position: the centre of its cell, normalised to [0, 1]^2 on its own grid; that is
how queries on one map find keys on a map of another resolution.

- ``deformable`` (default, the paper's choice): multi-scale deformable attention (``ops.MSDeformAttn``); the
  reference point of a query is its normalised centre on every key level. Cost O(Lq * heads * levels * points).
- ``global``: plain multi-head cross-attention of every query over every key (Vaswani et al. 2017), with
  q/k/v/out projections of width C. Cost O(Lq * S), quadratic by definition.
- ``cswin``: cross-shaped window cross-attention (after Dong et al., CSWin, CVPR 2022). Half of the heads
  attend to a horizontal stripe, half to a vertical stripe. On each key level (Hk, Wk) the rows are cut into
  contiguous stripes of ``sw`` rows (columns likewise); a query at normalised (x, y) maps to key row
  floor(y * Hk) and key column floor(x * Wk) and attends to every key in that row-stripe (sw * Wk keys) with
  its horizontal heads and in that column-stripe (sw * Hk keys) with its vertical heads. With several key
  levels, one softmax runs over the union of the stripes of all levels.
- ``pale``: pale-shaped cross-attention (after Wu et al., Pale Transformer, AAAI 2022). Same as ``cswin`` but
  the ``sw`` rows (columns) of a group are interleaved instead of contiguous: with g = ceil(Hk / sw) groups,
  row r belongs to group r mod g, i.e. rows {r0, r0 + g, r0 + 2g, ...} spread over the whole map.

For cswin and pale (default sw = 2, chosen to match the paper's FLOPs, see ``StripeCrossAttention``) a query
attends to sw * (Hk + Wk) keys per level, so the cost is O(Lq * sw * (Hk + Wk)):
linear in tokens at a fixed map side, the sense in which CSwin, Pale and the ViT-Adapter paper (Table 10)
call them linear, and far below global attention's O(Lq * S). cswin/pale/global have q/k/v/out projections
of width C (4 C^2 parameters); this choice reproduces the paper's 50.3M Mask R-CNN count (see README).

References:
    Zhu et al., "Deformable DETR", ICLR 2021; Dong et al., "CSWin Transformer", CVPR 2022; Wu et al., "Pale
    Transformer", AAAI 2022; Chen et al., "ViT-Adapter", ICLR 2023 (Table 10, attention ablation).
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ops import MSDeformAttn

from .constants import cached

Shapes = Sequence[Tuple[int, int]]
ATTN_TYPES = ('deformable', 'global', 'cswin', 'pale')


def grid_centres(shapes: Shapes, device=None) -> torch.Tensor:
    """Normalised (x, y) centres of the cells of each grid in ``shapes``, concatenated -> (sum h*w, 2)."""
    pts = []
    for h, w in shapes:
        ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32).add_(0.5).div_(h),
                                torch.arange(w, device=device, dtype=torch.float32).add_(0.5).div_(w),
                                indexing='ij')
        pts.append(torch.stack([xs.flatten(), ys.flatten()], -1))
    return torch.cat(pts, 0)


def _shapes_key(shapes: Shapes) -> tuple:
    return tuple((int(h), int(w)) for h, w in shapes)


def _shapes_tensors(shapes: Shapes, device) -> Tuple[torch.Tensor, torch.Tensor]:
    """(spatial_shapes, level_start_index) of ``shapes`` on ``device``, made once per (shapes, device)."""
    levels = _shapes_key(shapes)

    def build():
        starts = [0]
        for h, w in levels[:-1]:
            starts.append(starts[-1] + h * w)
        return (torch.as_tensor([list(s) for s in levels], dtype=torch.long, device=device),
                torch.as_tensor(starts, dtype=torch.long, device=device))
    return cached(('shapes', levels, str(torch.device(device))), build)


def _reference_points(shapes: Shapes, device, dtype: torch.dtype) -> torch.Tensor:
    """``grid_centres(shapes)`` in ``dtype`` on ``device``, made once per (shapes, device, dtype)."""
    levels = _shapes_key(shapes)
    return cached(('centres', levels, str(torch.device(device)), dtype),
                     lambda: grid_centres(levels, device).to(dtype))


def _offset_normalizer(shapes: Shapes, device, dtype: torch.dtype) -> torch.Tensor:
    """(L, 2) (W, H) of each level in ``dtype``: what ``MSDeformAttn`` divides the sampling offsets by."""
    levels = _shapes_key(shapes)
    return cached(('normalizer', levels, str(torch.device(device)), dtype),
                     lambda: torch.tensor([[w, h] for h, w in levels], dtype=dtype, device=device))


class DeformableCrossAttention(MSDeformAttn):
    """``ops.MSDeformAttn`` with the shared cross-attention signature (reference points = query centres).

    Args:
        dim: channels C.
        n_heads: heads.
        n_levels: number of key levels.
        n_points: sampling points per head and level.
        ratio: value-dimension ratio.
    """

    def __init__(self, dim: int, n_heads: int, n_levels: int, n_points: int = 4, ratio: float = 1.0, **_):
        super().__init__(d_model=dim, n_levels=n_levels, n_heads=n_heads, n_points=n_points, ratio=ratio)

    def forward(self, query: torch.Tensor, query_shapes: Shapes, feat: torch.Tensor,  # type: ignore[override]
                feat_shapes: Shapes) -> torch.Tensor:
        """query (B, Lq, C), feat (B, S, C) -> (B, Lq, C)."""
        b = query.shape[0]
        spatial, start = _shapes_tensors(feat_shapes, query.device)
        ref = _reference_points(query_shapes, query.device, query.dtype)
        ref = ref[None, :, None, :].expand(b, -1, len(feat_shapes), 2)
        levels = _shapes_key(feat_shapes)  # Python ints: for the export form (ops.grid_sample_form) too
        return super().forward(query, ref, feat, spatial, start, level_shapes=levels,
                               offset_normalizer=lambda dtype: _offset_normalizer(levels, query.device, dtype))


class GlobalCrossAttention(nn.Module):
    """Multi-head cross-attention over all keys (quadratic). Args as ``DeformableCrossAttention``."""

    def __init__(self, dim: int, n_heads: int, n_levels: int = 1, **_):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f'global attention: dim={dim} must be divisible by n_heads={n_heads}')
        self.n_heads = n_heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.n_heads, c // self.n_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, query_shapes: Shapes, feat: torch.Tensor,
                feat_shapes: Shapes) -> torch.Tensor:
        """query (B, Lq, C), feat (B, S, C) -> (B, Lq, C)."""
        q, k, v = self._heads(self.q_proj(query)), self._heads(self.k_proj(feat)), self._heads(self.v_proj(feat))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).flatten(2))


def _groups(n: int, sw: int, interleaved: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Split lines 0..n-1 into groups of <= sw lines.

    Returns:
        group_of_line (n,) long, and lines (n_groups, sw) long with -1 padding.
    """
    sw = min(sw, n)
    g = math.ceil(n / sw)
    line = torch.arange(n)
    group = line % g if interleaved else line // sw
    slot = line // g if interleaved else line % sw
    lines = torch.full((g, sw), -1, dtype=torch.long)
    lines[group, slot] = line
    return group, lines


def _bucket_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_bucket: torch.Tensor,
                   key_index: torch.Tensor, key_valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Attention where query i sees only the keys of its bucket.

    Args:
        q: (B, h, Lq, d) scaled queries; k, v: (B, h, S, d).
        q_bucket: (Lq,) bucket of each query; key_index: (nB, K) key indices per bucket; key_valid: (nB, K).

    Returns:
        out (B, h, Lq, d) and log-sum-exp of the scores (B, h, Lq).
    """
    n_b = key_index.shape[0]
    lq = q.shape[2]
    counts = torch.bincount(q_bucket, minlength=n_b)
    qmax = int(counts.max())
    order = torch.argsort(q_bucket, stable=True)
    starts = counts.cumsum(0) - counts
    sb = q_bucket[order]
    slot = sb * qmax + torch.arange(lq, device=q.device) - starts[sb]
    gather = torch.full((n_b * qmax,), lq, dtype=torch.long, device=q.device)
    gather[slot] = order
    slot_of_query = torch.empty_like(slot)
    slot_of_query[order] = slot
    q_ext = torch.cat([q, q.new_zeros(q.shape[:2] + (1, q.shape[3]))], 2)
    qb = q_ext[:, :, gather].unflatten(2, (n_b, qmax))                       # (B, h, nB, Qmax, d)
    kb, vb = k[:, :, key_index], v[:, :, key_index]                           # (B, h, nB, K, d)
    scores = qb @ kb.transpose(-1, -2)
    scores = scores.masked_fill(~key_valid[:, None, :], float('-inf'))
    lse = scores.logsumexp(-1)
    out = (scores - lse[..., None]).exp() @ vb
    return out.flatten(2, 3)[:, :, slot_of_query], lse.flatten(2)[:, :, slot_of_query]


class StripeCrossAttention(nn.Module):
    """Cross-shaped (``interleaved=False``, CSwin) or pale-shaped (``interleaved=True``) cross-attention.

    See the module docstring for the definition. Half of the heads use row groups, half column groups.

    Args:
        dim: channels C.
        n_heads: heads (even).
        n_levels: unused (any number of key levels works), kept for a uniform signature.
        stripe_width: lines per group ``sw``. Default 2: with it the FLOP increase over deformable attention
            (ViT-Adapter-S, 1280x800) is +49G (cswin) / +52G (pale) against the paper's +53G / +55G (Table 10);
            sw=1 gives +44G, sw=3 +60G / +64G.
        interleaved: pale (True) or cswin (False).
    """

    def __init__(self, dim: int, n_heads: int, n_levels: int = 1, stripe_width: int = 2,
                 interleaved: bool = False, **_):
        super().__init__()
        kind = 'pale' if interleaved else 'cswin'
        if n_heads % 2 or dim % n_heads:
            raise ValueError(f'{kind} attention needs an even number of heads dividing dim (dim={dim}, '
                             f'n_heads={n_heads}): half the heads attend to rows, half to columns')
        if stripe_width < 1:
            raise ValueError(f'{kind} attention: stripe_width must be >= 1, got {stripe_width}')
        self.n_heads, self.sw, self.interleaved = n_heads, stripe_width, interleaved
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.view(b, n, self.n_heads, c // self.n_heads).transpose(1, 2)

    def _level_indices(self, hk: int, wk: int, centres: torch.Tensor, rows: bool):
        """Bucket per query and key indices per bucket for one key level and one orientation."""
        n_lines, other = (hk, wk) if rows else (wk, hk)
        group, lines = _groups(n_lines, self.sw, self.interleaved)
        coord = centres[:, 1] if rows else centres[:, 0]
        q_line = (coord * n_lines).floor().long().clamp_(0, n_lines - 1)
        q_bucket = group[q_line]
        o = torch.arange(other)
        if rows:   # key (r, c) -> r * wk + c
            idx = lines[:, :, None] * wk + o[None, None, :]
        else:      # key (r, c) with c the line -> r * wk + c
            idx = o[None, None, :] * wk + lines[:, :, None]
        valid = (lines >= 0)[:, :, None].expand_as(idx)
        return q_bucket, idx.clamp(min=0).flatten(1), valid.flatten(1)

    def forward(self, query: torch.Tensor, query_shapes: Shapes, feat: torch.Tensor,
                feat_shapes: Shapes) -> torch.Tensor:
        """query (B, Lq, C), feat (B, S, C) -> (B, Lq, C)."""
        dev = query.device
        hd = query.shape[-1] // self.n_heads
        q = self._heads(self.q_proj(query)) * hd ** -0.5
        k, v = self._heads(self.k_proj(feat)), self._heads(self.v_proj(feat))
        centres = grid_centres(query_shapes)
        half = self.n_heads // 2
        outs: List[torch.Tensor] = []
        for heads, rows in ((slice(0, half), True), (slice(half, None), False)):
            lvl_out, lvl_lse, start = [], [], 0
            for hk, wk in feat_shapes:
                qb, idx, valid = self._level_indices(hk, wk, centres, rows)
                o, lse = _bucket_attend(q[:, heads], k[:, heads, start:start + hk * wk],
                                        v[:, heads, start:start + hk * wk], qb.to(dev), idx.to(dev),
                                        valid.to(dev))
                lvl_out.append(o)
                lvl_lse.append(lse)
                start += hk * wk
            lse = torch.stack(lvl_lse, 0)
            w = (lse - lse.logsumexp(0, keepdim=True)).exp()[..., None]       # (L, B, h, Lq, 1)
            outs.append((torch.stack(lvl_out, 0) * w).sum(0))
        out = torch.cat(outs, 1)                                               # (B, heads, Lq, d)
        return self.out_proj(out.transpose(1, 2).flatten(2))


def build_cross_attention(attn_type: str, dim: int, n_heads: int, n_levels: int, n_points: int = 4,
                          ratio: float = 1.0, stripe_width: int = 2) -> nn.Module:
    """Build a cross-attention by name: 'deformable' | 'global' | 'cswin' | 'pale'."""
    if attn_type == 'deformable':
        return DeformableCrossAttention(dim, n_heads, n_levels, n_points, ratio)
    if attn_type == 'global':
        return GlobalCrossAttention(dim, n_heads, n_levels)
    if attn_type in ('cswin', 'pale'):
        return StripeCrossAttention(dim, n_heads, n_levels, stripe_width, interleaved=attn_type == 'pale')
    raise ValueError(f'unknown attn_type {attn_type!r}; choose one of {ATTN_TYPES}')
