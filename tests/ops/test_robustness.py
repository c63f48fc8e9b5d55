"""Runs you can trust (issue 13): overflowing level tables, NaN/inf locations, D = 0, no host sync on CUDA.

Each test here failed on the code before the fix:
- a level table whose H*W wraps around int64 to the right S passed validation and the CPU kernel segfaulted
  (the compiled case runs in a subprocess, so a crash fails the test instead of killing pytest);
- NaN/inf sampling locations: the reference returned NaN, the CPU kernel finite values;
- the CPU backward with D = 0 channels and queries returned uninitialised location/weight gradients;
- the op read the CUDA level table on the host (a device-to-host copy, i.e. a GPU synchronisation).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ops import _build, functions, ms_deform_attn, ms_deform_attn_reference

from .cases import CUDA, KERNELS, adapter_inputs, make_inputs

BACKENDS = [pytest.param('reference', 'cpu', id='reference')] + KERNELS

# ---------------------------------------------------------------------------------------------- level table

# Tables of (H, W) whose int64 products / sums wrap around to exactly S = 30 (the table of make_inputs' default
# shapes (6, 4), (3, 2)): 2^32 * 2^32 = 2^64 wraps to 0; four levels of 2^62 sum to 2^64, which wraps to 0.
_S = 30
OVERFLOWING = {
    'product': ([[2 ** 32, 2 ** 32], [1, _S]], [0, 0], 'level 0 of spatial_shapes: H\\*W'),
    'sum': ([[2 ** 31, 2 ** 31]] * 4 + [[1, _S]], [0, 2 ** 62, 0, 0, 0], 'up to level 1'),
}


def _overflow_args(case, device='cpu'):
    shapes, starts, _ = OVERFLOWING[case]
    value, _, _, _, _ = make_inputs(n=1, m=2, d=4, lq=3, dtype=torch.float32)
    _, _, _, loc, attn = make_inputs(n=1, m=2, d=4, lq=3, shapes=[(2, 2)] * len(shapes), dtype=torch.float32)
    # the wrap-around is real: int64 tensor arithmetic (the old check) gets S
    table = torch.tensor(shapes, dtype=torch.long)
    assert int((table[:, 0] * table[:, 1]).sum()) == value.shape[1] == _S
    starts = torch.tensor(starts, dtype=torch.long)
    return value.to(device), table.to(device), starts.to(device), loc.to(device), attn.to(device)


@pytest.mark.parametrize('case', list(OVERFLOWING))
def test_overflowing_level_table_raises_value_error_in_the_reference(case):
    match = OVERFLOWING[case][2]
    with pytest.raises(ValueError, match=match):
        ms_deform_attn(*_overflow_args(case), backend='reference')
    with pytest.raises(ValueError, match=match):
        ms_deform_attn_reference(*_overflow_args(case))


_ROOT = Path(__file__).resolve().parents[2]


def _child(code, *args):
    """Run code in a fresh Python from the repository root (a crash there fails the test, not pytest)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_ROOT), os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, '-c', code, *args], capture_output=True, text=True, timeout=600,
                          cwd=_ROOT, env=env)


_CPU_CALLS = '''
import sys, torch
from tests.ops.test_robustness import _overflow_args
from ops import _build, ms_deform_attn
ext = _build.load_extension("cpu")
args = _overflow_args(sys.argv[1])
out = torch.zeros(1, 3, 8)
for name, call in (("wrapper", lambda: ms_deform_attn(*args, backend="cpu")),
                   ("op", lambda: torch.ops.vit_adapter.ms_deform_attn(*args)),
                   ("forward", lambda: ext.forward(*args)), ("backward", lambda: ext.backward(out, *args))):
    try:
        call()
        print(name, "no error", flush=True)
    except ValueError as exc:
        print(name, "ValueError:", str(exc).splitlines()[0], flush=True)
'''


@pytest.mark.parametrize('case', list(OVERFLOWING))
def test_overflowing_level_table_raises_value_error_on_the_cpu_backend(case):
    """The wrapper (Python ints), the registered op and the compiled kernel's own check (reached when the wrapper is
    bypassed, or while tracing) all raise. In a subprocess: before the fix the kernel segfaulted."""
    _build.load_extension('cpu')  # build once here (cached), so the child only imports it
    res = _child(_CPU_CALLS, case)
    assert res.returncode == 0, f'child died with {res.returncode} (segfault: -11)\n{res.stdout}\n{res.stderr[-2000:]}'
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 4 and all('ValueError' in line and 'overflow' in line for line in lines), res.stdout
    assert re.search(OVERFLOWING[case][2], lines[0]), lines[0]


_CUDA_CALL = '''
import sys, torch
from tests.ops.test_robustness import _overflow_args
from ops import ms_deform_attn
args = _overflow_args(sys.argv[1], "cuda")
try:
    ms_deform_attn(*args, backend="cuda")  # no host read of the table: the kernel checks it
    torch.cuda.synchronize()
    print("no error")
except RuntimeError as exc:
    print("RuntimeError:", " ".join(str(exc).split())[:300])
'''


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('case', list(OVERFLOWING))
def test_overflowing_level_table_stops_the_cuda_kernel(case):
    """In-kernel check: a device-side assertion (it poisons the CUDA context, hence the subprocess)."""
    res = _child(_CUDA_CALL, case)
    assert 'RuntimeError' in res.stdout and 'device-side assert' in res.stdout, (res.stdout, res.stderr[-2000:])
    # the assertion message is printed by the device (printf: stdout, or stderr depending on the driver)
    assert 'spatial_shapes / level_start_index' in res.stdout + res.stderr, (res.stdout, res.stderr[-2000:])


def test_level_table_errors_name_the_level():
    args = list(make_inputs(n=1, m=2, d=4, lq=3, dtype=torch.float32))
    args[1] = torch.tensor([[6, 4], [0, 2]])
    with pytest.raises(ValueError, match='level 1 of spatial_shapes is \\(H, W\\) = \\(0, 2\\)'):
        ms_deform_attn(*args, backend='cpu')
    args = list(make_inputs(n=1, m=2, d=4, lq=3, dtype=torch.float32))
    args[2] = torch.tensor([0, 23])
    with pytest.raises(ValueError, match='level 1 starts at 24, not 23'):
        ms_deform_attn(*args, backend='cpu')


# ---------------------------------------------------------------------------------------------- no host sync


class _DeviceReadError(AssertionError):
    pass


def _forbid_device_reads(monkeypatch):
    """Tensor.item/tolist/cpu/numpy/__bool__/__int__/__float__ raise for tensors that are not on the CPU."""
    for name in ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__int__', '__float__', '__index__'):
        real = getattr(torch.Tensor, name)

        def guarded(self, *args, _real=real, _name=name, **kwargs):
            if self.device.type != 'cpu':
                raise _DeviceReadError(f'Tensor.{_name}() on a {self.device} tensor: a host synchronisation')
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, guarded)

    def to(self, *args, _real=torch.Tensor.to, **kwargs):
        out = _real(self, *args, **kwargs)
        if self.device.type != 'cpu' and out.device.type == 'cpu':
            raise _DeviceReadError(f'Tensor.to() from {self.device} to the CPU: a host synchronisation')
        return out

    monkeypatch.setattr(torch.Tensor, 'to', to)
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda *a, **k: (_ for _ in ()).throw(
        _DeviceReadError('torch.cuda.synchronize()')))


def _on_fake_cuda(t):
    """A fake CUDA tensor of t's shape and dtype (metadata only: a CPU-only torch cannot copy to 'cuda')."""
    return torch.empty(t.shape, dtype=t.dtype, device='cuda')


@pytest.fixture
def fake_cuda(monkeypatch):
    """Fake CUDA tensors (metadata only; no GPU needed) and a stand-in for the CUDA extension: the op runs its
    Python path (validation, backend choice, the registered op with its fake kernel, autograd) for cuda inputs.
    Build the inputs outside the mode, then enter it (``with fake_cuda:``)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    monkeypatch.delenv(functions.ENV_VAR, raising=False)
    functions.reset_backend_cache()
    real_load = _build.load_extension
    monkeypatch.setattr(_build, 'load_extension',
                        lambda kind, verbose=False: object() if kind == 'cuda' else real_load(kind, verbose))
    yield FakeTensorMode(allow_non_fake_inputs=True)
    functions.reset_backend_cache()


@pytest.mark.parametrize('backend', ['cuda', 'auto'])
def test_cuda_op_path_reads_no_device_tensor(fake_cuda, monkeypatch, backend):
    """For cuda inputs the wrapper never copies the level table (or anything) to the host: the CUDA kernel
    checks the table itself. Any data read of a fake tensor would also raise (data-dependent)."""
    inputs = make_inputs(n=2, m=2, d=4, lq=3, dtype=torch.float32)
    with fake_cuda:
        value, spatial, starts, loc, attn = (_on_fake_cuda(t) for t in inputs)
        _forbid_device_reads(monkeypatch)
        out = ms_deform_attn(value, spatial, starts, loc, attn, backend=backend)
        assert out.device.type == 'cuda' and out.shape == (2, 3, 8)
        # The autograd formula of the op (a CPU-only torch cannot run autograd on CUDA tensors, even fake ones).
        ctx = SimpleNamespace(saved_tensors=(value, spatial, starts, loc, attn),
                              needs_input_grad=(True, False, False, True, True))
        grad_value, _, _, grad_loc, grad_attn = functions._backward(ctx, _on_fake_cuda(out))
        assert grad_value.shape == value.shape and grad_loc.shape == loc.shape and grad_attn.shape == attn.shape


def test_module_reads_no_device_level_table(monkeypatch):
    """MSDeformAttn reads input_spatial_shapes on the host only for CPU tensors. Meta tensors stand in for CUDA
    ones here (a CPU-only torch cannot index fake CUDA tensors); the op is stubbed (tested above)."""
    import ops
    from ops import modules

    seen = []
    def op(value, shapes, starts, loc, attn, backend=None, softmax=False):
        seen.append(shapes.device.type)
        return value.new_empty(loc.shape[0], loc.shape[1], value.shape[2] * value.shape[3])

    monkeypatch.setattr(modules, 'ms_deform_attn', op)
    m = ops.MSDeformAttn(32, 2, 2, 2).to('meta')
    spatial, starts = (t.to('meta') for t in make_inputs(shapes=((4, 4), (2, 2)))[1:3])
    query, ref, x = torch.randn(2, 5, 32), torch.rand(2, 5, 2, 2), torch.randn(2, 20, 32)
    _forbid_device_reads(monkeypatch)
    out = m(query.to('meta'), ref.to('meta'), x.to('meta'), spatial, starts)
    assert out.shape == (2, 5, 32) and seen == ['meta']


def test_device_read_guard_catches_the_old_check(fake_cuda, monkeypatch):
    """The guard works: the pre-fix check (the level table's tolist() on the device) is caught."""
    with fake_cuda:
        spatial = _on_fake_cuda(torch.tensor([[6, 4]]))
        _forbid_device_reads(monkeypatch)
        with pytest.raises(_DeviceReadError):
            spatial.prod(1).tolist()


# ---------------------------------------------------------------------------------------------- NaN / inf


def _run(backend, inputs, grad_output=None, dtype=None):
    leaves = [inputs[i].detach().clone().requires_grad_() for i in (0, 3, 4)]
    out = ms_deform_attn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2], backend=backend)
    if grad_output is None:
        grad_output = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    grads = torch.autograd.grad(out, leaves, grad_output.to(out))
    return (out,) + grads


def _assert_same_nonfinite(got, want, tol, names=('output', 'grad value', 'grad locations', 'grad weights')):
    """Same NaN / +inf / -inf positions, and the finite entries agree."""
    for name, g, w in zip(names, got, want):
        g, w = g.detach().cpu().double(), w.detach().cpu().double()
        for what, fn in (('NaN', torch.isnan), ('+inf', torch.isposinf), ('-inf', torch.isneginf)):
            assert torch.equal(fn(g), fn(w)), f'{name}: {what} at {fn(g).nonzero().tolist()[:6]} vs ' \
                                              f'{fn(w).nonzero().tolist()[:6]}'
        fin = torch.isfinite(w)
        torch.testing.assert_close(g[fin], w[fin], **tol, msg=lambda m: f'{name}: {m}')


def _poke(inputs, where, values, coord=None):
    loc = inputs[3].clone()
    for idx, val in zip(where, values):
        loc[idx + ((coord,) if coord is not None else ())] = val
    return inputs[:3] + (loc,) + inputs[4:]


_TOL = {torch.float64: dict(atol=1e-10, rtol=1e-8), torch.float32: dict(atol=1e-4, rtol=1e-3)}


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')], ids=['nan', 'inf', '-inf'])
@pytest.mark.parametrize('coord', ['x', 'y', 'both'])
def test_nonfinite_locations_match_the_reference(backend, device, dtype, bad, coord):
    """NaN/inf in x, y or both of a few points: output NaN for those (query, head) rows, gradients as the
    reference's (value gradient untouched by them, weight gradient NaN, x gradient NaN iff y is bad...)."""
    inputs = make_inputs(n=2, m=2, d=5, lq=4, shapes=((5, 7), (2, 3)), p=3, dtype=dtype, device=device,
                         lo=-0.2, hi=1.2)
    loc = inputs[3].clone()
    points = [(0, 0, 1, 0, 2), (1, 3, 0, 1, 0), (1, 2, 1, 0, 0), (1, 2, 1, 1, 1)]  # (n, q, m, level, point)
    for pt in points:
        if coord in ('x', 'both'):
            loc[pt + (0,)] = bad
        if coord in ('y', 'both'):
            loc[pt + (1,)] = bad
    inputs = inputs[:3] + (loc,) + inputs[4:]
    got = _run(backend, inputs)
    want = _run('reference', tuple(t.cpu() for t in inputs))
    assert torch.isnan(want[0]).any() and torch.isnan(got[0]).any()
    _assert_same_nonfinite(got, want, _TOL[dtype])


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('bad', [float('nan'), float('inf')], ids=['nan', 'inf'])
def test_nonfinite_weight_on_a_point_outside_the_map(backend, device, bad):
    """weight * zero sample = NaN in the reference; the kernels used to skip the point (finite output)."""
    inputs = make_inputs(n=1, m=2, d=4, lq=3, dtype=torch.float64, device=device)
    loc, attn = inputs[3].clone(), inputs[4].clone()
    loc[0, 1, 0, 1, 0] = torch.tensor([1.7, 0.4], dtype=torch.float64)  # outside level 1
    attn[0, 1, 0, 1, 0] = bad
    inputs = inputs[:3] + (loc, attn)
    got, want = _run(backend, inputs), _run('reference', tuple(t.cpu() for t in inputs))
    assert torch.isnan(want[0][0, 1, :4]).all()
    _assert_same_nonfinite(got, want, _TOL[torch.float64])


@pytest.mark.parametrize('backend,device', KERNELS)
def test_nonfinite_grad_output_gives_nonfinite_gradients_where_the_reference_does(backend, device):
    """A NaN/inf in grad_output (points inside and outside the maps): the same gradients are non-finite. Which
    of NaN or +-inf depends on the order of the sums (inf - inf), so only finiteness is compared."""
    inputs = make_inputs(n=1, m=2, d=4, lq=3, dtype=torch.float64, device=device, lo=-0.5, hi=1.5, seed=3)
    grad = torch.randn(1, 3, 8, dtype=torch.float64)
    grad[0, 1, 2] = float('nan')
    grad[0, 2, 5] = float('inf')
    got, want = _run(backend, inputs, grad), _run('reference', tuple(t.cpu() for t in inputs), grad)
    for name, g, w in zip(('grad value', 'grad locations', 'grad weights'), got[1:], want[1:]):
        g, w = g.cpu(), w.cpu()
        assert not torch.isfinite(w).all(), name
        assert torch.equal(torch.isfinite(g), torch.isfinite(w)), name
        fin = torch.isfinite(w)
        torch.testing.assert_close(g[fin], w[fin], **_TOL[torch.float64])


@pytest.mark.parametrize('backend,device', KERNELS)
@pytest.mark.parametrize('call', ['injector', 'extractor'])
def test_nonfinite_locations_at_adapter_shapes(backend, device, call):
    """ViT-Adapter-S shapes (64 channels: the unrolled float32 kernels), 1% of the points NaN or inf."""
    inputs = adapter_inputs(call, 128, 1, torch.float32, device)
    g = torch.Generator().manual_seed(0)
    loc = inputs[3].clone()
    mask = torch.rand(loc.shape, generator=g) < 0.01
    fill = torch.where(torch.rand(loc.shape, generator=g) < 0.5, float('nan'), float('inf'))
    loc = torch.where(mask.to(loc.device), fill.to(loc), loc)
    inputs = inputs[:3] + (loc,) + inputs[4:]
    got, want = _run(backend, inputs), _run('reference', tuple(t.cpu() for t in inputs))
    assert torch.isnan(want[0]).any()
    _assert_same_nonfinite(got, want, _TOL[torch.float32])


@pytest.mark.parametrize('backend,device', KERNELS)
def test_nonfinite_locations_bfloat16_forward(backend, device):
    inputs = adapter_inputs('injector', 128, 1, torch.float32, device)
    loc = inputs[3].clone()
    loc[0, 5, 2, 1, 3, 0] = float('nan')
    loc[0, 9, 4, 0, 0, 1] = float('-inf')
    inputs = (inputs[0].to(torch.bfloat16),) + inputs[1:3] + (loc, inputs[4])
    got = ms_deform_attn(*inputs, backend=backend).float().cpu()
    want = ms_deform_attn(*inputs, backend='reference').float().cpu()
    nan_rows = torch.isnan(want).view(1, -1, 6, 64).all(-1)
    assert nan_rows.sum() == 2 and torch.equal(torch.isnan(got), torch.isnan(want))


# ---------------------------------------------------------------------------------------------- D = 0


@pytest.mark.parametrize('backend,device', BACKENDS)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16])
def test_zero_channels_give_zero_gradients(backend, device, dtype):
    """D = 0 with queries: empty output, zero location/weight gradients (were uninitialised on the CPU)."""
    if backend == 'reference' and dtype == torch.bfloat16:
        pytest.skip('same float32 code as float32')
    inputs = make_inputs(n=2, m=3, d=0, lq=50, p=4, dtype=dtype, device=device)
    for _ in range(3):  # leave freed NaN-filled blocks of the gradients' sizes for the allocator to hand back
        junk = [torch.full(inputs[i].shape, float('nan'), dtype=inputs[i].dtype, device=device) for i in (3, 4)]
        del junk
        out, grad_value, grad_loc, grad_attn = _run(backend, inputs, torch.zeros(2, 50, 0, dtype=torch.float64))
        assert out.shape == (2, 50, 0) and grad_value.shape == inputs[0].shape
        assert torch.equal(grad_loc, torch.zeros_like(grad_loc)), grad_loc.flatten()[:8]
        assert torch.equal(grad_attn, torch.zeros_like(grad_attn)), grad_attn.flatten()[:8]
