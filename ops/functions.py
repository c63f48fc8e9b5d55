"""Backend dispatch for ``ms_deform_attn`` (placeholder: reference only until the kernels land)."""
from __future__ import annotations

import torch

from .reference import ms_deform_attn_reference


def ms_deform_attn(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                   sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                   backend: str | None = None) -> torch.Tensor:
    """Multi-scale deformable attention; see ``ops.reference.ms_deform_attn_reference`` for shapes."""
    return ms_deform_attn_reference(value, spatial_shapes, level_start_index, sampling_locations,
                                    attention_weights)
