"""Inputs and tolerances shared by the ops tests."""
from __future__ import annotations

import pytest
import torch

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (none on this machine)')

# (backend, device) pairs for every compiled backend; CUDA ones skip cleanly without a GPU.
KERNELS = [
    pytest.param('cpu', 'cpu', id='cpu'),
    pytest.param('cuda', 'cuda', id='cuda', marks=[pytest.mark.cuda, CUDA]),
]

# Per-dtype tolerances of a kernel against the float64 reference fed the same (rounded) inputs.
# float32: fp32 accumulation over L*P*4 terms; bf16 / fp16: output rounding of the value dtype.
TOLERANCES = {
    torch.float64: dict(atol=1e-12, rtol=1e-10),
    torch.float32: dict(atol=2e-5, rtol=1e-4),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=2e-2, rtol=1e-2),
}


def level_meta(shapes, device='cpu'):
    """spatial_shapes (L, 2) int64 and level_start_index (L,) int64 for a list of (H, W)."""
    spatial = torch.tensor(shapes, dtype=torch.long, device=device)
    sizes = spatial.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    return spatial, starts


def make_inputs(n=1, m=2, d=4, lq=3, shapes=((6, 4), (3, 2)), p=2, dtype=torch.float64, device='cpu',
                seed=0, lo=0.0, hi=1.0, coord_dtype=None):
    """Random (value, spatial_shapes, level_start_index, sampling_locations, attention_weights).

    Locations are uniform in [lo, hi] (use lo < 0 or hi > 1 for points outside the maps).
    """
    g = torch.Generator().manual_seed(seed)
    spatial, starts = level_meta(shapes)
    s = int(spatial.prod(1).sum())
    coord_dtype = coord_dtype or (torch.float64 if dtype == torch.float64 else torch.float32)
    value = torch.randn(n, s, m, d, generator=g, dtype=torch.float64)
    loc = lo + (hi - lo) * torch.rand(n, lq, m, len(shapes), p, 2, generator=g, dtype=torch.float64)
    attn = torch.rand(n, lq, m, len(shapes), p, generator=g, dtype=torch.float64)
    attn = attn / attn.sum((-1, -2), keepdim=True)
    return (value.to(device, dtype), spatial.to(device), starts.to(device), loc.to(device, coord_dtype),
            attn.to(device, coord_dtype))


def adapter_inputs(call, size=128, n=1, dtype=torch.float64, device='cpu', seed=0):
    """ViT-Adapter-S shaped inputs at a reduced input resolution (6 heads x 64 channels, 4 points).

    injector: queries at 1/16, values at 1/8, 1/16, 1/32; extractor: the other way round.
    """
    from ops.bench import make_inputs as bench_inputs

    value, spatial, starts, loc, attn = bench_inputs(call, size, n, 'cpu', torch.float64, seed=seed)
    coord = torch.float64 if dtype == torch.float64 else torch.float32
    return value.to(device, dtype), spatial.to(device), starts.to(device), loc.to(device, coord), \
        attn.to(device, coord)


def small_module_inputs(device='cuda'):
    """(query, reference_points, input_flatten, spatial_shapes, level_start_index) of a small three-level
    ``MSDeformAttn(d_model=64, n_levels=3, ...)`` call: batch 2, 64 queries, maps 16x16 / 8x8 / 4x4."""
    shapes = torch.tensor([[16, 16], [8, 8], [4, 4]], dtype=torch.long, device=device)
    starts = torch.tensor([0, 256, 320], dtype=torch.long, device=device)
    query, feat = torch.randn(2, 64, 64, device=device), torch.randn(2, 336, 64, device=device)
    ref = torch.rand(2, 64, 3, 2, device=device)
    return query, ref, feat, shapes, starts


def capture_graph(step, static):
    """``step(*static)`` captured in a CUDA graph after two warm-up calls on a side stream (as torch.cuda.graphs
    asks); returns (graph, the captured outputs, which ``graph.replay()`` refills)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            step(*static)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = step(*static)
    return graph, captured
