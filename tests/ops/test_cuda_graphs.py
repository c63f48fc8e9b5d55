"""The CUDA op path neither synchronises with the host nor allocates by data, so it runs under
``torch.cuda.set_sync_debug_mode('error')``, inside a captured CUDA graph and under
``torch.compile(mode='reduce-overhead')`` (CUDA graphs). GPU only (``pytest -m cuda``; part of ``make gpu-check``).

What is left outside this guarantee (see ops/README.md): the 'reference' backend reads the level table on the host
(``tolist()``, a sync), and the criss-cross / stripe attention of the attention ablation (``adapter.attention.
_bucket_attend``) sizes a buffer from ``counts.max()``. The default ViT-Adapter (deformable attention) is tested
here end to end.
"""
from __future__ import annotations

import pytest
import torch

import ops
from ops.functions import ms_deform_attn

from .cases import CUDA, adapter_inputs, capture_graph, small_module_inputs

pytestmark = [pytest.mark.cuda, CUDA]


def _leaves(value, loc, attn):
    return [t.detach().clone().requires_grad_() for t in (value, loc, attn)]


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_op_forward_backward_do_not_synchronise(dtype):
    value, spatial, starts, loc, attn = adapter_inputs('injector', 128, 2, dtype, 'cuda')
    v, l_, a = _leaves(value, loc, attn)
    ms_deform_attn(v, spatial, starts, l_, a, backend='cuda').float().sum().backward()  # build, resolve, warm up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        out = ms_deform_attn(v, spatial, starts, l_, a, backend='cuda')
        grads = torch.autograd.grad(out, (v, l_, a), torch.ones_like(out))
    finally:
        torch.cuda.set_sync_debug_mode('default')
    assert out.dtype == dtype and grads[0].dtype == dtype


def test_op_forward_backward_capture_in_a_cuda_graph():
    value, spatial, starts, loc, attn = adapter_inputs('injector', 128, 1, torch.float32, 'cuda')
    static = _leaves(value, loc, attn)
    grad_out = torch.randn(1, loc.shape[1], value.shape[2] * value.shape[3], device='cuda')

    def step(v, l_, a):
        out = ms_deform_attn(v, spatial, starts, l_, a, backend='cuda')
        return (out,) + torch.autograd.grad(out, (v, l_, a), grad_out)

    graph, captured = capture_graph(step, static)
    new_value, _, _, new_loc, new_attn = adapter_inputs('injector', 128, 1, torch.float32, 'cuda', seed=1)
    with torch.no_grad():
        for dst, src in zip(static, (new_value, new_loc, new_attn)):
            dst.copy_(src)
    graph.replay()
    torch.cuda.synchronize()
    eager = step(*_leaves(new_value, new_loc, new_attn))
    for got, want in zip(captured, eager):  # value gradient: atomicAdd order differs between runs
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_module_under_torch_compile_reduce_overhead():
    torch.manual_seed(0)
    attn = ops.MSDeformAttn(d_model=64, n_levels=3, n_heads=2, n_points=4, backend='cuda').cuda()
    query, ref, feat, shapes, starts = small_module_inputs('cuda')
    eager = attn(query, ref, feat, shapes, starts)
    compiled = torch.compile(attn, mode='reduce-overhead', fullgraph=True)
    for _ in range(3):  # the first calls record, later ones replay the CUDA graph
        out = compiled(query, ref, feat, shapes, starts).clone()
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-4)


def test_vit_adapter_train_step_does_not_synchronise():
    """The whole default backbone (deformable attention, bf16 autocast, train mode) after one warm-up step."""
    from adapter import ViTAdapter
    model = ViTAdapter('tiny').cuda().train()
    x = torch.randn(2, 3, 128, 128, device='cuda')

    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            outs = model(x)
        sum(o.float().sum() for o in outs).backward()

    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode('default')
