"""``MSDeformAttn``: the multi-scale deformable attention module (Deformable DETR layout).

References:
    Zhu et al., "Deformable DETR", ICLR 2021; Chen et al., "ViT-Adapter", ICLR 2023 (``ratio``).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .functions import ms_deform_attn, softmax_points
from .reference import ms_deform_attn_grid_sample


# The softmax over (levels x points) lives with the op (ops.functions.softmax_points): ``ms_deform_attn(...,
# softmax=True)`` takes the logits, and the 'triton' backend fuses the softmax into its kernels.
_softmax_last = softmax_points


class MSDeformAttn(nn.Module):
    """Multi-scale deformable attention.

    Args:
        d_model: channels of query and input.
        n_levels: number of feature levels.
        n_heads: attention heads; ``int(d_model * ratio)`` must be divisible by it.
        n_points: sampling points per head and level.
        ratio: shrinks the value dimension to ``int(d_model * ratio)`` (ViT-Adapter uses 1.0, 0.5).
        backend: forced backend name (see ``ops.functions``), default chosen by device and dtype.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4,
                 ratio: float = 1.0, backend: str | None = None):
        super().__init__()
        value_dim = int(d_model * ratio)
        if value_dim % n_heads != 0:
            raise ValueError(f'MSDeformAttn: value dim int(d_model*ratio)={value_dim} must be divisible '
                             f'by n_heads={n_heads}; change d_model, ratio or n_heads')
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.ratio, self.backend = ratio, backend
        # set by ``grid_sample_form()`` for export: the op as standard ops (F.grid_sample per level)
        self.grid_sample_form = False
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, value_dim)
        self.output_proj = nn.Linear(value_dim, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        # One direction per head on the unit circle, scaled to the max-norm square, times point index.
        thetas = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(self.n_heads, 1, 1, 2)
        grid = grid.repeat(1, self.n_levels, self.n_points, 1)
        for i in range(self.n_points):
            grid[:, :, i, :] *= i + 1
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.constant_(self.attention_weights.weight, 0.0)
        nn.init.constant_(self.attention_weights.bias, 0.0)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.constant_(self.value_proj.bias, 0.0)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.constant_(self.output_proj.bias, 0.0)

    def _query_projections(self, query: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``sampling_offsets(query)``, ``attention_weights(query)`` as one matrix product.

        The two weights are concatenated on each call (the parameters and their state-dict keys stay as in
        Deformable DETR): one GEMM instead of two, and under autocast one cast of ``query`` instead of two. Per
        call that is 2 ATen ops fewer forward and about 6 fewer backward (a ViT-Adapter-S forward+backward makes
        10 calls).
        """
        a, b = self.sampling_offsets, self.attention_weights
        if a.bias is None or b.bias is None:
            return a(query), b(query)
        both = F.linear(query, torch.cat([a.weight, b.weight]), torch.cat([a.bias, b.bias]))
        return both.split([a.out_features, b.out_features], -1)

    def forward(self, query: torch.Tensor, reference_points: torch.Tensor, input_flatten: torch.Tensor,
                input_spatial_shapes: torch.Tensor, input_level_start_index: torch.Tensor,
                input_padding_mask: torch.Tensor | None = None,
                level_shapes: Sequence[Tuple[int, int]] | None = None,
                offset_normalizer: Callable[[torch.dtype], torch.Tensor] | None = None) -> torch.Tensor:
        """
        Args:
            query: (N, Lq, C)
            reference_points: (N, Lq, L, 2) normalised (x, y) in [0, 1], or (N, Lq, L, 4) boxes (cx, cy, w, h).
            input_flatten: (N, S, C) with S = sum(H_l * W_l).
            input_spatial_shapes: (L, 2) int64 (H, W).
            input_level_start_index: (L,) int64.
            input_padding_mask: (N, S) bool, True where padded (those values are zeroed).
            level_shapes: the (H, W) of ``input_spatial_shapes`` as Python ints. Used only in the grid_sample form
                (``grid_sample_form()``), where a traced graph must not read the table from a tensor; without it
                that form reads the table on the host (not possible while tracing).
            offset_normalizer: ``f(dtype) -> (L, 2)`` tensor of each level's (W, H) in ``dtype``, for a caller that
                keeps it made (e.g. cached per input size); None: built from ``input_spatial_shapes`` (two small
                ops per call). Used with 2-d reference points only.

        Returns:
            (N, Lq, C)
        """
        n, lq, _ = query.shape
        _, s, _ = input_flatten.shape
        shapes = input_spatial_shapes
        # CPU tables only (exact Python ints, no int64 wrap-around); a CUDA table is not read on the host (that
        # would synchronise): the op's CUDA kernel checks it.
        if not torch.compiler.is_compiling() and shapes.device.type == 'cpu':
            tokens = sum(int(h) * int(w) for h, w in shapes.tolist())
            if tokens != s:
                raise ValueError(f'MSDeformAttn: input_spatial_shapes {shapes.tolist()} sum to {tokens} tokens but '
                                 f'input_flatten has S={s}')
        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value = value.masked_fill(input_padding_mask[..., None], 0.0)
        value = value.view(n, s, self.n_heads, -1)
        offsets, logits = self._query_projections(query)
        offsets = offsets.view(n, lq, self.n_heads, self.n_levels, self.n_points, 2)
        # logits; their softmax over (levels x points) is taken by the op (fused into the kernels with 'triton')
        logits = logits.view(n, lq, self.n_heads, self.n_levels, self.n_points)
        if reference_points.shape[-1] == 2:
            if offset_normalizer is not None:
                normalizer = offset_normalizer(offsets.dtype)
            else:
                normalizer = torch.stack([shapes[..., 1], shapes[..., 0]], -1).to(offsets.dtype)
            locations = (reference_points[:, :, None, :, None, :]
                         + offsets / normalizer[None, None, None, :, None, :])
        elif reference_points.shape[-1] == 4:
            locations = (reference_points[:, :, None, :, None, :2]
                         + offsets / self.n_points * reference_points[:, :, None, :, None, 2:] * 0.5)
        else:
            raise ValueError(f'MSDeformAttn: reference_points last dim must be 2 or 4, '
                             f'got shape {tuple(reference_points.shape)}')
        if getattr(self, 'grid_sample_form', False):  # absent on modules pickled before it existed
            if level_shapes is None:
                if torch.compiler.is_compiling():
                    raise ValueError('MSDeformAttn: the grid_sample form needs level_shapes (Python ints) while '
                                     'tracing; pass level_shapes=[(H, W), ...] to forward')
                level_shapes = [(int(h), int(w)) for h, w in shapes.tolist()]
            weights = softmax_points(logits.flatten(-2)).view_as(logits)
            out = ms_deform_attn_grid_sample(value, level_shapes, locations, weights.to(value.dtype))
        else:
            out = ms_deform_attn(value, shapes, input_level_start_index, locations, logits, backend=self.backend,
                                 softmax=True)
        return self.output_proj(out)


@contextlib.contextmanager
def grid_sample_form(model: nn.Module, enable: bool = True) -> Iterator[nn.Module]:
    """Within the block every ``MSDeformAttn`` of ``model`` computes the op as standard PyTorch ops
    (``ms_deform_attn_grid_sample``: one ``F.grid_sample`` per level and a weighted sum) instead of the
    registered op, so that an exporter without a translation of ``vit_adapter::ms_deform_attn`` (ONNX) sees only
    ops it knows. Same semantics as the op (the reference's core); the previous setting is restored on exit.

    Example::

        with grid_sample_form(backbone):
            torch.onnx.export(backbone, (x,), 'backbone.onnx')
    """
    mods = [m for m in model.modules() if isinstance(m, MSDeformAttn)]
    before = [getattr(m, 'grid_sample_form', False) for m in mods]
    for m in mods:
        m.grid_sample_form = enable
    try:
        yield model
    finally:
        for m, b in zip(mods, before):
            m.grid_sample_form = b
