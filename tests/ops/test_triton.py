"""The 'triton' backend (ops/triton_msda.py) against the pure-PyTorch reference.

Two halves:

- CPU, in Triton's interpreter (marker ``interpreter``): small shapes (Lq <= 8, S <= 39; levels of 1xW and Hx1,
  points outside the maps, D = 5, batch 2). Triton chooses between its interpreter and its compiler when a function
  is wrapped by ``triton.jit`` (its own ``triton.language`` helpers when triton is first imported), from
  ``TRITON_INTERPRET`` at that moment, not at launch; so a process that imported triton in compiled mode cannot
  interpret. These tests therefore run in one child pytest per session, started with ``TRITON_INTERPRET=1`` on this
  file (``-m interpreter``), and each test here reports its own outcome from that run (failures with the child's
  traceback). In a process that already interprets (``TRITON_INTERPRET=1 pytest tests/ops/test_triton.py``) they
  run directly. triton is a locked dependency (``make install``): without it these tests fail, they do not skip.
- GPU (marker ``cuda``, part of ``make gpu-check``): the same checks on CUDA tensors with the compiled kernels, plus
  ViT-Adapter shapes, fp16, CUDA-graph capture without host synchronisation and ``torch.compile``. They skip
  without a GPU.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

import ops
from ops import functions, ms_deform_attn, ms_deform_attn_reference, triton_msda

from . import test_kernels, test_robustness
from .cases import CUDA, TOLERANCES, capture_graph, make_inputs, small_module_inputs

ROOT = Path(__file__).resolve().parents[2]
#: This process runs Triton's interpreter (TRITON_INTERPRET=1 when triton was imported).
INTERPRETED = triton_msda.INTERPRET

# Levels (5, 4), a 1x7 and a 6x1 map: S = 33; points up to 0.3 outside the maps; D = 5; batch 2, 2 heads, 6 queries.
# (The interpreter runs each program's Python body with numpy: about 0.05 s per program and pass here.)
SMALL = dict(n=2, m=2, d=5, lq=6, shapes=((5, 4), (1, 7), (6, 1)), p=2, lo=-0.3, hi=1.3)
GRAD_TOL = {torch.float64: dict(atol=1e-10, rtol=1e-8), torch.float32: dict(atol=1e-4, rtol=1e-3),
            torch.bfloat16: dict(atol=6e-2, rtol=3e-2), torch.float16: dict(atol=6e-3, rtol=6e-3)}
# the brief's forward tolerance for float32 (tighter than cases.TOLERANCES)
FWD_TOL = {**TOLERANCES, torch.float32: dict(atol=1e-5, rtol=1e-5)}


# ---------------------------------------------------------------------------------------------- interpreter child

_child: dict = {}


def _run_child() -> dict:
    """Run this file's ``interpreter`` tests once in a child pytest with TRITON_INTERPRET=1; {test name: (outcome,
    text)} from its JUnit report, plus '' -> the tail of its output."""
    if not _child:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / 'report.xml'
            env = dict(os.environ, TRITON_INTERPRET='1')
            cmd = [sys.executable, '-m', 'pytest', str(Path(__file__).relative_to(ROOT)), '-m', 'interpreter', '-q',
                   '-p', 'no:cacheprovider', f'--junitxml={report}']
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
            _child[''] = ('output', f'$ TRITON_INTERPRET=1 {" ".join(cmd)}\n' + (proc.stdout + proc.stderr)[-4000:])
            if report.exists():
                for case in ET.parse(report).getroot().iter('testcase'):
                    outcome, text = 'passed', ''
                    for tag in ('failure', 'error', 'skipped'):
                        el = case.find(tag)
                        if el is not None:
                            outcome, text = tag, (el.get('message') or '') + '\n' + (el.text or '')
                            break
                    _child[case.get('name')] = (outcome, text)
    return _child


def interpreted(fn):
    """Mark a test as one for Triton's interpreter: run here when this process interprets, else report its outcome
    in the child run (see the module docstring)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if INTERPRETED:
            return fn(*args, **kwargs)
        name = os.environ['PYTEST_CURRENT_TEST'].split('::', 1)[1].rsplit(' (', 1)[0]
        results = _run_child()
        outcome, text = results.get(name, ('missing', ''))
        if outcome != 'passed':
            pytest.fail(f'{name} under TRITON_INTERPRET=1 (child pytest): {outcome}\n{text[-6000:]}\n'
                        f'--- child output ---\n{results[""][1]}', pytrace=False)
    return pytest.mark.interpreter(run)


# ---------------------------------------------------------------------------------------------- shared checks


def _ref64(inputs):
    return ms_deform_attn_reference(*[t.detach().cpu().double() if t.is_floating_point() else t.cpu()
                                      for t in inputs])


def check_forward(device, dtype, **case):
    inputs = make_inputs(**dict(SMALL, **case), dtype=dtype, device=device)
    out = ms_deform_attn(*inputs, backend='triton')
    n, _, m, d = inputs[0].shape
    assert out.shape == (n, inputs[3].shape[1], m * d) and out.dtype == dtype and out.device == inputs[0].device
    torch.testing.assert_close(out.cpu().double(), _ref64(inputs), **FWD_TOL[dtype])


def _grads(fn, inputs, grad):
    leaves = [inputs[i].detach().clone().requires_grad_() for i in (0, 3, 4)]
    out = fn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2])
    return (out,) + torch.autograd.grad(out, leaves, grad.to(out))


def check_gradients(device, dtype, **case):
    """The three gradients, from the atomic and from the deterministic backward of one forward, against the
    float64 reference fed the same rounded inputs and grad_output."""
    inputs = make_inputs(**dict(SMALL, **case), dtype=dtype, device=device)
    n, _, m, d = inputs[0].shape
    grad = torch.randn(n, inputs[3].shape[1], m * d, generator=torch.Generator().manual_seed(1),
                       dtype=torch.float64).to(dtype).to(device)
    leaves = [inputs[i].detach().clone().requires_grad_() for i in (0, 3, 4)]
    out = ms_deform_attn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2], backend='triton')
    want = _grads(ms_deform_attn_reference, [t.cpu().double() if t.is_floating_point() else t.cpu()
                                             for t in inputs], grad.cpu().double())
    for deterministic in (False, True):  # read when the backward runs
        with _deterministic(deterministic):
            got = torch.autograd.grad(out, leaves, grad, retain_graph=True)
        assert got[0].dtype == dtype and got[1].dtype == inputs[3].dtype and got[2].dtype == inputs[4].dtype
        for name, g, w in zip(('grad value', 'grad locations', 'grad weights'), got, want[1:]):
            torch.testing.assert_close(g.cpu().double(), w, **GRAD_TOL[dtype],
                                       msg=lambda msg: f'{name} (deterministic={deterministic}): {msg}')


class _deterministic:
    def __init__(self, on: bool):
        self.on = on

    def __enter__(self):
        self.before = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(self.on)

    def __exit__(self, *exc):
        torch.use_deterministic_algorithms(self.before)


class _LaunchCounter:
    """Counts launches of one kernel of ``triton_msda.KERNELS`` (``kernel[grid](...)``)."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


def check_deterministic_backward(device, monkeypatch, inputs=None):
    """Under torch.use_deterministic_algorithms(True) the value gradient comes from the sort + gather path (no
    atomics): two backward passes are bitwise equal, and equal to the atomic path's within rounding."""
    gather = _LaunchCounter(triton_msda.KERNELS['_msda_gather_kernel'])
    monkeypatch.setitem(triton_msda.KERNELS, '_msda_gather_kernel', gather)
    inputs = inputs or make_inputs(**dict(SMALL, lq=8), dtype=torch.float32, device=device)
    leaves = [inputs[i].detach().clone().requires_grad_() for i in (0, 3, 4)]
    out = ms_deform_attn(leaves[0], inputs[1], inputs[2], leaves[1], leaves[2], backend='triton')
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(device)
    with _deterministic(True):
        first, second = (torch.autograd.grad(out, leaves, grad, retain_graph=True) for _ in range(2))
    assert gather.launches == 2
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    with _deterministic(False):
        atomic = torch.autograd.grad(out, leaves, grad)
    assert gather.launches == 2  # the default path does not gather
    for a, b in zip(first, atomic):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def check_gradcheck(device, deterministic):
    value, spatial, starts, loc, attn = make_inputs(n=2, m=1, d=3, lq=2, shapes=((3, 2), (1, 3), (2, 1)), p=1,
                                                    dtype=torch.float64, device=device, lo=-0.1, hi=1.1, seed=5)
    args = [t.requires_grad_() for t in (value, loc, attn)]

    def fn(v, l_, a):
        return ms_deform_attn(v, spatial, starts, l_, a, backend='triton')

    with _deterministic(deterministic):
        assert torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, fast_mode=True)


def check_fused_softmax(device, dtype):
    """softmax=True (logits, softmax fused in the kernels) equals softmax-then-op, forward and gradients."""
    inputs = make_inputs(**SMALL, dtype=dtype, device=device)
    logits = torch.randn(inputs[4].shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    inputs = inputs[:4] + (logits.to(inputs[4]),)
    grad = torch.randn(_ref64(inputs).shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    got = _grads(lambda *a: ms_deform_attn(*a, backend='triton', softmax=True), inputs, grad.to(device))

    def unfused(v, s, st, loc, z):
        return ms_deform_attn_reference(v, s, st, loc, z.flatten(-2).softmax(-1).view_as(z))

    want = _grads(unfused, [t.cpu().double() if t.is_floating_point() else t.cpu() for t in inputs], grad)
    tol = GRAD_TOL[dtype]
    for name, g, w in zip(('output', 'grad value', 'grad locations', 'grad logits'), got, want):
        torch.testing.assert_close(g.cpu().double(), w, **tol, msg=lambda msg: f'{name}: {msg}')
    # the other backends take softmax=True too (softmax in PyTorch first): same numbers
    ref = ms_deform_attn(*[t.cpu() for t in inputs], backend='reference', softmax=True)
    torch.testing.assert_close(got[0].cpu(), ref, **FWD_TOL[dtype])


def check_module(device):
    """MSDeformAttn(backend='triton') (logits into the fused softmax) against MSDeformAttn(backend='reference')."""
    from .test_api import _module, _module_inputs
    q, ref_pts, x, spatial, starts = (t.to(device) for t in _module_inputs(n=2, lq=5, shapes=((4, 4), (1, 3))))
    mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=device)
    mask[1, -3:] = True
    outs = []
    for backend in ('reference', 'triton'):
        m = _module(backend).double().to(device)
        out = m(q, ref_pts, x, spatial, starts, mask)
        out.square().sum().backward()
        outs.append((out, m.value_proj.weight.grad, m.sampling_offsets.weight.grad, m.attention_weights.weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


# ---------------------------------------------------------------------------------------------- CPU: interpreter


@interpreted
def test_child_runs_the_interpreter():
    assert triton_msda.INTERPRET and os.environ.get('TRITON_INTERPRET') == '1'
    assert ops.current_backend('cpu', torch.float32, backend='triton') == 'triton'


@interpreted
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16, torch.float16])
def test_forward_matches_reference(dtype):
    check_forward('cpu', dtype)


@interpreted
@pytest.mark.parametrize('case', ['detr_small', 'batch3', 'odd_channels'])
def test_forward_kernel_cases(case):
    """Cases of test_kernels.py: Deformable DETR's small case, batch 3 with 16 channels, 71 channels (BLOCK_D 128)."""
    test_kernels.test_forward_matches_reference('triton', 'cpu', torch.float32, case)


@interpreted
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16])
def test_gradients_match_reference(dtype):
    check_gradients('cpu', dtype)


@interpreted
def test_deterministic_backward_is_bitwise_reproducible(monkeypatch):
    check_deterministic_backward('cpu', monkeypatch)


@interpreted
def test_gradcheck_float64():
    """torch.autograd.gradcheck through ops.ms_deform_attn(backend='triton') (the deterministic backward; the atomic
    one is compared with the reference's gradients above)."""
    check_gradcheck('cpu', deterministic=True)


@interpreted
def test_fused_softmax_matches_softmax_then_op():
    check_fused_softmax('cpu', torch.float64)


@interpreted
def test_module_uses_the_fused_softmax_and_matches_reference():
    check_module('cpu')


@interpreted
def test_module_fused_softmax_is_the_one_triton_gets(monkeypatch):
    """With backend 'triton' the module hands the logits to the op with softmax=True (one fused op, no softmax in
    PyTorch); with the other backends the op computes the softmax first."""
    seen = []
    real = triton_msda.forward
    monkeypatch.setattr(triton_msda, 'forward', lambda *a, softmax=False: seen.append(softmax) or real(*a,
                                                                                                      softmax=softmax))
    from .test_api import _module, _module_inputs
    _module('triton')(*_module_inputs(n=1, lq=2, dtype=torch.float32))
    assert seen == [True]


@interpreted
def test_nonfinite_locations_weights_and_grad_output_like_the_reference():
    """test_robustness.py's NaN/inf cases: same NaN/inf positions in the output and the gradients."""
    for dtype, bad, coord in ((torch.float64, float('nan'), 'x'), (torch.float64, float('inf'), 'y'),
                              (torch.float32, -float('inf'), 'both')):
        test_robustness.test_nonfinite_locations_match_the_reference('triton', 'cpu', dtype, bad, coord)
    test_robustness.test_nonfinite_weight_on_a_point_outside_the_map('triton', 'cpu', float('inf'))
    test_robustness.test_nonfinite_grad_output_gives_nonfinite_gradients_where_the_reference_does('triton', 'cpu')


@interpreted
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16])
def test_zero_channels_and_no_queries(dtype):
    test_robustness.test_zero_channels_give_zero_gradients('triton', 'cpu', dtype)
    test_kernels.test_empty_query_set('triton', 'cpu')


@interpreted
def test_non_contiguous_inputs():
    test_kernels.test_non_contiguous_inputs('triton', 'cpu')


@interpreted
def test_bad_level_table_inside_the_kernel_gives_nan():
    """The kernels check the table they read from the device tensors (the wrapper's host check is bypassed here):
    a table that does not describe S loads nothing and gives NaN."""
    value, spatial, starts, loc, attn = make_inputs(**SMALL, dtype=torch.float32)
    grad = torch.ones(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3])
    for bad_spatial, bad_starts in ((spatial * 2, starts), (torch.tensor([[2 ** 62, 4], [1, 7], [6, 1]]), starts)):
        assert torch.isnan(triton_msda.forward(value, bad_spatial, bad_starts, loc, attn)).all()
    _, grad_loc, grad_attn = triton_msda.backward(grad, value, spatial, starts + 1, loc, attn)
    assert torch.isnan(grad_loc).all() and torch.isnan(grad_attn).all()


@interpreted
def test_registered_op_passes_opcheck_and_exports():
    """The op keeps its fake kernel and autograd registration (torch.library.opcheck: schema, fake tensors,
    autograd registration), and torch.export keeps it in the graph."""
    inputs = make_inputs(n=1, m=2, d=3, lq=2, shapes=((2, 3), (1, 2)), p=2, dtype=torch.float32)
    args = (inputs[0].requires_grad_(), inputs[1], inputs[2], inputs[3].requires_grad_(), inputs[4], True)
    # (test_aot_dispatch_dynamic left out: slow in the interpreter; torch.export below traces the op instead)
    torch.library.opcheck(torch.ops.vit_adapter.ms_deform_attn_triton.default, args,
                          test_utils=('test_schema', 'test_autograd_registration', 'test_faketensor'))

    class Attn(torch.nn.Module):
        def forward(self, v, s, st, loc, w):
            return ms_deform_attn(v, s, st, loc, w, backend='triton')

    program = torch.export.export(Attn(), tuple(t.detach() for t in inputs))
    assert 'vit_adapter.ms_deform_attn_triton' in str(program.graph)
    torch.testing.assert_close(program.module()(*inputs), Attn()(*inputs))


# ---------------------------------------------------------------------------------------------- CPU: no interpreter


def test_triton_is_installed_as_locked():
    """triton is a locked dependency (requirements.lock), so these tests cannot silently skip; CUDA builds of torch
    bring their own triton (tools/lock.py --cuda), so the pin is compared only with a CPU torch."""
    ok, version = triton_msda.available()
    assert ok, f'triton does not import ({version}); `make install` installs it from requirements.lock'
    if torch.version.cuda is None:
        pins = [ln.split('==', 1)[1] for ln in (ROOT / 'requirements.lock').read_text().splitlines()
                if ln.startswith('triton==')]
        assert pins == [version], f'requirements.lock pins triton {pins}, installed {version}: run `make install`'


def test_cpu_without_the_interpreter_raises_naming_the_fix(fresh_backends, monkeypatch):
    monkeypatch.setattr(triton_msda, 'INTERPRET', False)
    with pytest.raises(ValueError, match='TRITON_INTERPRET=1'):
        ms_deform_attn(*make_inputs(dtype=torch.float32), backend='triton')
    with pytest.raises(ValueError, match='TRITON_INTERPRET=1'):
        ops.current_backend('cpu', torch.float32, backend='triton')


def test_missing_triton_raises_naming_the_fix(fresh_backends, monkeypatch):
    monkeypatch.setattr(triton_msda, 'available', lambda: (False, "ModuleNotFoundError: No module named 'triton'"))
    with pytest.raises(RuntimeError, match='pip install triton'):
        ms_deform_attn(*make_inputs(dtype=torch.float32), backend='triton')
    monkeypatch.setenv(functions.ENV_VAR, 'triton')
    functions.reset_backend_cache()
    with pytest.raises(RuntimeError, match="backend 'triton' was requested"):
        ops.current_backend('cuda', torch.float32)


def test_auto_never_picks_triton(fresh_backends, monkeypatch):
    """backend=None / 'auto' on CPU stays the C++ kernel, also with the interpreter switched on."""
    monkeypatch.setattr(triton_msda, 'INTERPRET', True)
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    assert ops.current_backend('cpu', torch.float32) == 'cpu'
    assert ops.current_backend('cpu', torch.bfloat16, backend='auto') == 'cpu'


# ---------------------------------------------------------------------------------------------- GPU (compiled)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize('case', list(test_kernels.CASES) + ['injector', 'extractor', 'small'])
def test_cuda_forward_matches_reference(dtype, case):
    if case == 'small':
        check_forward('cuda', dtype)
    elif dtype in (torch.float64, torch.float32):
        test_kernels.test_forward_matches_reference('triton', 'cuda', dtype, case)
    else:
        inputs = test_kernels._inputs(case, torch.float32, 'cuda')
        inputs = (inputs[0].to(dtype),) + inputs[1:]
        out = ms_deform_attn(*inputs, backend='triton')
        assert out.dtype == dtype
        torch.testing.assert_close(out.cpu().double(), _ref64(inputs), **TOLERANCES[dtype])


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('deterministic', [False, True], ids=['atomic', 'deterministic'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('case', ['detr_small', 'out_of_range', 'non_square', 'batch3', 'injector', 'extractor'])
def test_cuda_gradients_match_reference(dtype, case, deterministic):
    with _deterministic(deterministic):
        test_kernels.test_gradients_match_reference('triton', 'cuda', dtype, case)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16])
def test_cuda_small_case_gradients(dtype):
    check_gradients('cuda', dtype)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16])
def test_cuda_reduced_precision_at_adapter_shapes(dtype):
    from .test_reference_dtypes import test_registered_op_forward_backward_all_dtypes
    test_registered_op_forward_backward_all_dtypes('triton', 'cuda', dtype)


@pytest.mark.cuda
@CUDA
def test_cuda_deterministic_backward_is_bitwise_reproducible(monkeypatch):
    check_deterministic_backward('cuda', monkeypatch)
    # and at adapter shapes, where many queries hit the same value rows
    from .cases import adapter_inputs
    check_deterministic_backward('cuda', monkeypatch, adapter_inputs('extractor', 128, 2, torch.float32, 'cuda'))


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('deterministic', [False, True], ids=['atomic', 'deterministic'])
def test_cuda_gradcheck_float64(deterministic):
    check_gradcheck('cuda', deterministic)
    with _deterministic(deterministic):
        for channels in (32, 64, 71):
            test_kernels.test_gradcheck_float64('triton', 'cuda', channels)


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_cuda_fused_softmax(dtype):
    check_fused_softmax('cuda', dtype)


@pytest.mark.cuda
@CUDA
def test_cuda_module_matches_reference():
    check_module('cuda')


@pytest.mark.cuda
@CUDA
def test_cuda_nonfinite_like_the_reference():
    for dtype in (torch.float64, torch.float32):
        for bad in (float('nan'), float('inf')):
            test_robustness.test_nonfinite_locations_match_the_reference('triton', 'cuda', dtype, bad, 'both')
    test_robustness.test_nonfinite_weight_on_a_point_outside_the_map('triton', 'cuda', float('nan'))
    test_robustness.test_nonfinite_grad_output_gives_nonfinite_gradients_where_the_reference_does('triton', 'cuda')
    for call in ('injector', 'extractor'):
        test_robustness.test_nonfinite_locations_at_adapter_shapes('triton', 'cuda', call)
    test_robustness.test_nonfinite_locations_bfloat16_forward('triton', 'cuda')


@pytest.mark.cuda
@CUDA
@pytest.mark.parametrize('deterministic', [False, True], ids=['atomic', 'deterministic'])
def test_cuda_no_host_sync_and_cuda_graph_capture(deterministic):
    """Forward + backward under set_sync_debug_mode('error'), then captured in a CUDA graph and replayed."""
    from .cases import adapter_inputs
    value, spatial, starts, loc, attn = adapter_inputs('injector', 128, 2, torch.float32, 'cuda')
    static = [t.detach().clone().requires_grad_() for t in (value, loc, attn)]
    grad_out = torch.randn(2, loc.shape[1], value.shape[2] * value.shape[3], device='cuda')

    def step(v, l_, a):
        out = ms_deform_attn(v, spatial, starts, l_, a, backend='triton', softmax=True)
        return (out,) + torch.autograd.grad(out, (v, l_, a), grad_out)

    with _deterministic(deterministic):
        step(*static)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            step(*static)
        finally:
            torch.cuda.set_sync_debug_mode('default')
        graph, captured = capture_graph(step, static)
        new = adapter_inputs('injector', 128, 2, torch.float32, 'cuda', seed=1)
        with torch.no_grad():
            for dst, src in zip(static, (new[0], new[3], new[4])):
                dst.copy_(src)
        graph.replay()
        torch.cuda.synchronize()
        eager = step(*[t.detach().clone().requires_grad_() for t in (new[0], new[3], new[4])])
    for got, want in zip(captured, eager):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.cuda
@CUDA
def test_cuda_module_under_torch_compile():
    torch.manual_seed(0)
    attn = ops.MSDeformAttn(d_model=64, n_levels=3, n_heads=2, n_points=4, backend='triton').cuda()
    query, ref_pts, feat, shapes, starts = small_module_inputs('cuda')
    eager = attn(query, ref_pts, feat, shapes, starts)
    compiled = torch.compile(attn, fullgraph=True)
    out = compiled(query, ref_pts, feat, shapes, starts)
    out.sum().backward()
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-4)
