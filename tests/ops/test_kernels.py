"""Every compiled backend against the pure-PyTorch reference (forward, gradients, gradcheck, determinism)."""
from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ops import ms_deform_attn, ms_deform_attn_reference

from .cases import CUDA, KERNELS, TOLERANCES, adapter_inputs, make_inputs

# name -> make_inputs kwargs (or adapter_inputs call)
CASES = {
    # Deformable DETR's small unit-test case.
    'detr_small': dict(n=1, m=2, d=2, lq=2, shapes=((6, 4), (3, 2)), p=2),
    'out_of_range': dict(n=2, m=2, d=8, lq=7, shapes=((5, 7), (2, 3)), p=3, lo=-0.3, hi=1.3),
    'non_square': dict(n=1, m=3, d=5, lq=4, shapes=((3, 11), (9, 2), (1, 1)), p=2),
    'batch3': dict(n=3, m=2, d=16, lq=5, shapes=((4, 4), (2, 2)), p=4),
    'odd_channels': dict(n=2, m=1, d=71, lq=3, shapes=((5, 3),), p=2),
}


def _inputs(case, dtype, device):
    if case in ('injector', 'extractor'):
        return adapter_inputs(case, 128, 1, dtype, device)
    return make_inputs(**CASES[case], dtype=dtype, device=device)


def _reference64(inputs):
    return ms_deform_attn_reference(*[t.double() if t.is_floating_point() else t for t in (
        inp.cpu() for inp in inputs)])


class _OpRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('case', list(CASES) + ['injector', 'extractor'])
def test_forward_matches_reference(backend, device, dtype, case):
    inputs = _inputs(case, dtype, device)
    out = ms_deform_attn(*inputs, backend=backend)
    n, _, m, d = inputs[0].shape
    assert out.shape == (n, inputs[3].shape[1], m * d) and out.dtype == dtype and out.device == inputs[0].device
    torch.testing.assert_close(out.cpu().double(), _reference64(inputs), **TOLERANCES[dtype])


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('case', ['detr_small', 'out_of_range', 'non_square', 'batch3', 'injector', 'extractor'])
def test_gradients_match_reference(backend, device, dtype, case):
    inputs = _inputs(case, dtype, device)
    leaves = [inputs[i].detach().clone().requires_grad_() for i in (0, 3, 4)]
    out = ms_deform_attn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2], backend=backend)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    got = torch.autograd.grad(out, leaves, grad.to(out))
    ref_leaves = [t.detach().cpu().double().requires_grad_() for t in leaves]
    ref = ms_deform_attn_reference(ref_leaves[0], inputs[1].cpu(), inputs[2].cpu(), ref_leaves[1], ref_leaves[2])
    want = torch.autograd.grad(ref, ref_leaves, grad)
    tol = TOLERANCES[dtype] if dtype == torch.float64 else dict(atol=1e-4, rtol=1e-3)  # sums over many queries
    for name, g, w in zip(('value', 'sampling_locations', 'attention_weights'), got, want):
        assert g.dtype == dtype, name
        torch.testing.assert_close(g.cpu().double(), w, **tol, msg=lambda m: f'grad of {name}: {m}')


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('channels', [30, 32, 64, 71, 1025])
def test_gradcheck_float64(backend, device, channels):
    value, spatial, starts, loc, attn = make_inputs(n=1, m=2, d=channels, lq=2, shapes=((3, 2), (2, 2)), p=2,
                                                    dtype=torch.float64, device=device, lo=-0.1, hi=1.1,
                                                    seed=channels)
    args = [t.requires_grad_() for t in (value, loc, attn)]

    def fn(v, l_, a):
        return ms_deform_attn(v, spatial, starts, l_, a, backend=backend)

    # Large channel counts: the fast (random projection) mode keeps the test short.
    assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, fast_mode=channels > 32)


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_reduced_precision_matches_reference(backend, device, dtype):
    """fp16/bf16 values with fp32 locations/weights; compared with the float64 reference on the rounded values."""
    if backend == 'cpu' and dtype == torch.float16:
        pytest.skip('float16 on the CPU works but is slow; bfloat16 covers the reduced-precision CPU path')
    inputs = adapter_inputs('injector', 128, 1, torch.float32, device)
    inputs = (inputs[0].to(dtype),) + inputs[1:]
    out = ms_deform_attn(*inputs, backend=backend)
    assert out.dtype == dtype
    torch.testing.assert_close(out.cpu().double(), _reference64(inputs), **TOLERANCES[dtype])
    v = inputs[0].detach().requires_grad_()
    loc = inputs[3].detach().requires_grad_()
    ms_deform_attn(v, inputs[1], inputs[2], loc, inputs[4], backend=backend).float().sum().backward()
    assert v.grad.dtype == dtype and loc.grad.dtype == torch.float32
    assert torch.isfinite(v.grad.float()).all() and torch.isfinite(loc.grad).all()


def test_cpu_kernel_is_used_not_the_reference():
    inputs = make_inputs(dtype=torch.float32)
    with _OpRecorder() as rec:
        ms_deform_attn(*inputs, backend='cpu')
    assert 'vit_adapter.ms_deform_attn.default' in rec.ops, rec.ops
    assert not any('grid_sampler' in op for op in rec.ops), rec.ops
    v = inputs[0].clone().requires_grad_()
    out = ms_deform_attn(v, *inputs[1:], backend='cpu')
    assert 'vit_adapter_ms_deform_attn' in out.grad_fn.name()
    with _OpRecorder() as rec:
        ms_deform_attn(*inputs, backend='reference')
    assert any('grid_sampler' in op for op in rec.ops) and 'vit_adapter.ms_deform_attn.default' not in rec.ops


def _cpu_grads(threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        inputs = adapter_inputs('extractor', 128, 2, torch.float32)
        leaves = [inputs[i].clone().requires_grad_() for i in (0, 3, 4)]
        out = ms_deform_attn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2], backend='cpu')
        return torch.autograd.grad(out, leaves, torch.ones_like(out) / 7)
    finally:
        torch.set_num_threads(old)


def test_cpu_backward_is_deterministic():
    """Two runs are bitwise equal, and so are runs with 1 and 2 threads (each value-gradient row has one owner)."""
    first, second, single = _cpu_grads(2), _cpu_grads(2), _cpu_grads(1)
    for a, b, c in zip(first, second, single):
        assert torch.equal(a, b)
        assert torch.equal(a, c)


@pytest.mark.cuda
@CUDA
def test_cuda_backward_flags_nondeterminism():
    inputs = make_inputs(dtype=torch.float32, device='cuda')
    v = inputs[0].clone().requires_grad_()
    out = ms_deform_attn(v, *inputs[1:], backend='cuda')
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match='deterministic'):
            out.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize('backend,device', KERNELS)
def test_non_contiguous_inputs(backend, device):
    value, spatial, starts, loc, attn = make_inputs(n=2, m=3, d=8, lq=5, dtype=torch.float32, device=device)
    value_nc = value.transpose(0, 1).contiguous().transpose(0, 1)  # same values, non-contiguous strides
    loc_nc = loc.transpose(1, 2).contiguous().transpose(1, 2)
    assert not value_nc.is_contiguous() and not loc_nc.is_contiguous()
    out = ms_deform_attn(value_nc, spatial, starts, loc_nc, attn, backend=backend)
    torch.testing.assert_close(out, ms_deform_attn(value, spatial, starts, loc, attn, backend=backend))


@pytest.mark.parametrize('backend,device', KERNELS)
def test_empty_query_set(backend, device):
    value, spatial, starts, loc, attn = make_inputs(lq=0, dtype=torch.float32, device=device)
    v = value.clone().requires_grad_()
    out = ms_deform_attn(v, spatial, starts, loc, attn, backend=backend)
    assert out.shape == (1, 0, value.shape[2] * value.shape[3])
    out.sum().backward()
    assert torch.equal(v.grad, torch.zeros_like(v))
