"""Export (``adapter.export``): torch.export keeps the registered op and equals eager; ONNX (deformable attention as
GridSample) run by ONNX Runtime matches PyTorch; the export switch; the CLI's bad arguments.

Inputs of 224x160 with 14-token windows: the 14x10 patch grid pads its width to 14 in every windowed block, and
the 14x14 position embedding is resized to 14x10 (bicubic, ONNX Resize).

Tolerance of ONNX Runtime vs PyTorch (float32): max |ort - eager| <= 1e-4 * max |eager| per output level
(``adapter.export.RTOL``). The two run different float32 kernels (GEMM blocking and summation order, LayerNorm,
softmax, erf-GELU, GridSample), each within a few ulp; through 12 blocks and 4 interactions this gives
3-7e-6 absolute on outputs of magnitude 7-12, i.e. at most 1e-6 relative (measured on a 2-core Zen 4 VM, ONNX
Runtime 1.32, torch 2.13: tiny 4.0-6.1e-7, S 5.3-9.4e-7 relative per level, the same with and without the ONNX
optimizer). 1e-4 leaves two orders of magnitude of headroom for other CPUs and thread counts, while a wrong
lowering is far above it: sampling with align_corners=True instead of False moves the outputs by 2.7-3.4e-1
relative, border padding instead of zeros by 7-8e-1 (``test_tolerance_catches_a_wrong_sampling_convention``).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ops
from adapter import ViTAdapter
from adapter import export as ex
from ops import functions, grid_sample_form
from ops.modules import MSDeformAttn

SIZE = (224, 160)


def _model(arch: str) -> ViTAdapter:
    """Window attention (14) as the detection configs; gammas and BN statistics away from their init so that
    every injector, layer scale and norm changes the output."""
    torch.manual_seed(0)
    m = ViTAdapter(arch, window_attn=True, window_size=14)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith('gamma'):
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
    return ex.prepare(m)


def _x(batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, *SIZE, generator=torch.Generator().manual_seed(2))


@pytest.fixture
def compiled_op(monkeypatch):
    """The compiled CPU kernel behind the registered op (the adapter tests default to the reference)."""
    monkeypatch.setenv(functions.ENV_VAR, 'cpu')
    functions.reset_backend_cache()
    yield
    functions.reset_backend_cache()


# ------------------------------------------------------------------------------------------------ the switch


def test_grid_sample_form_replaces_the_op_and_restores_the_setting(monkeypatch):
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=32, n_levels=2, n_heads=2, n_points=3)
    torch.nn.init.normal_(attn.sampling_offsets.weight, std=0.5)  # points off the reference, some outside
    torch.nn.init.normal_(attn.attention_weights.weight)
    shapes = [(6, 5), (3, 2)]
    spatial = torch.as_tensor(shapes, dtype=torch.long)
    start = torch.as_tensor([0, 30], dtype=torch.long)
    query, feat = torch.randn(2, 7, 32), torch.randn(2, 36, 32)
    ref = torch.rand(2, 7, 2, 2)
    expected = attn(query, ref, feat, spatial, start)

    def no_op(*a, **k):
        raise AssertionError('the registered op was called inside grid_sample_form')

    monkeypatch.setattr(ops.modules, 'ms_deform_attn', no_op)
    with grid_sample_form(attn):
        assert attn.grid_sample_form
        got = attn(query, ref, feat, spatial, start, level_shapes=shapes)
        got_host = attn(query, ref, feat, spatial, start)  # eager: the table is read on the host
    assert not attn.grid_sample_form
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_host, expected, rtol=1e-6, atol=1e-6)


def test_tolerance_catches_a_wrong_sampling_convention():
    """The ONNX tolerance is far below what a wrong lowering of the sampling gives (eager, tiny model)."""
    m, x = _model('tiny'), _x()
    with torch.no_grad():
        good = m(x)
    for bad in (dict(align_corners=True), dict(padding_mode='border')):
        orig = F.grid_sample

        def wrong(inp, grid, **kw):
            return orig(inp, grid, **{**kw, **bad})

        with pytest.MonkeyPatch.context() as mp, torch.no_grad(), grid_sample_form(m):
            mp.setattr(ops.reference.F, 'grid_sample', wrong)
            rows = ex.compare(good, m(x))
        assert min(r['rel'] for r in rows) > 100 * ex.RTOL, (bad, rows)


# ------------------------------------------------------------------------------------------------ torch.export


@pytest.mark.parametrize('arch', ['tiny', 'S'])
def test_torch_export_keeps_the_op_and_equals_eager(arch, compiled_op):
    m, x = _model(arch), _x()
    with torch.no_grad():
        eager = m(x)
    ep = ex.export_program(m, x)
    targets = [n.target for n in ep.graph.nodes if n.op == 'call_function']
    assert targets.count(torch.ops.vit_adapter.ms_deform_attn.default) == 4 * 2 + 2  # injectors, extractors
    assert not any('grid_sampler' in str(t) for t in targets)
    # fused BN: the 6 SPM BatchNorms are folded into their convs; only the 4 output norms remain
    assert sum('batch_norm' in str(t) for t in targets) == 4
    with torch.no_grad():
        exported = ep.module()(x)
        again = m(x)  # tracing left no fake tensor behind (e.g. in the level-table cache)
    for a, b, c in zip(eager, exported, again, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


# ------------------------------------------------------------------------------------------------ ONNX


# tiny: the CLI's path (ONNX optimizer on: constant folding, fusions; ~60% of the export time). S: the same graph
# structure at the paper's width, exported without the optimizer to keep the test short (ORT folds constants
# itself); both have been measured with the optimizer on (module docstring).
@pytest.mark.parametrize('arch, optimize', [('tiny', True), ('S', False)])
def test_onnx_runtime_matches_pytorch(arch, optimize, tmp_path):
    import onnx
    m, x = _model(arch), _x()
    with torch.no_grad():
        eager = m(x)  # the registered op (reference backend here), not the grid_sample form
    path = str(tmp_path / f'{arch}.onnx')
    ex.export_onnx(m, x, path, optimize=optimize)
    graph = onnx.load(path).graph
    kinds = {n.op_type for n in graph.node}
    assert 'GridSample' in kinds and 'Pad' in kinds  # the deformable attention, the window padding
    assert {n.domain for n in graph.node} <= {'', 'ai.onnx'}  # standard ops only, no custom op
    assert not any(m.grid_sample_form for m in m.modules() if isinstance(m, MSDeformAttn))
    rows = ex.compare(eager, ex.run_onnx(path, x))
    print(f'{arch} ORT vs eager: ' + ', '.join(f"{r['max_abs']:.2e} abs / {r['rel']:.1e} rel" for r in rows))
    assert all(r['rel'] <= ex.RTOL for r in rows), rows
    assert max(r['max_abs'] for r in rows) > 0  # ORT really computed it (not a copy of the eager outputs)


# ------------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize('argv, message', [
    (['--size', '100', '160'], 'multiples of 32'),
    (['--arch', 'XL'], 'invalid choice'),
    (['--opset', '16'], 'must be >= 18'),
    (['--batch', '0'], 'must be >= 1'),
    (['--weights', '/nonexistent/w.pth'], 'no such file'),
    (['--size', '224'], 'expected 2 arguments'),
])
def test_cli_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        ex.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and 'Traceback' not in err


def test_cli_bad_arguments_in_a_process_print_no_traceback():
    r = subprocess.run([sys.executable, '-m', 'adapter.export', '--size', '100', '160'], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and 'multiples of 32' in r.stderr and 'Traceback' not in r.stderr


def test_cli_writes_a_loadable_program(tmp_path, compiled_op, capsys):
    assert ex.main(['--arch', 'tiny', '--size', '64', '96', '--window-attn', '--window-size', '4',
                    '--format', 'pt2', '--out', str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'torch.export vs eager' in out and 'ok' in out
    ep = torch.export.load(str(tmp_path / 'vit_adapter_tiny_64x96_win.pt2'))
    with torch.no_grad():
        got = ep.module()(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in got] == [(1, 64, 16, 24), (1, 64, 8, 12), (1, 64, 4, 6), (1, 64, 2, 3)]
    assert all(torch.isfinite(o).all() for o in got)
