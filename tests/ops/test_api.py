"""ms_deform_attn's input validation, backend choice (argument, env var, fallback), module, torch.compile."""
from __future__ import annotations

import logging
import warnings

import pytest
import torch

import ops
from ops import _build, functions
from ops import ms_deform_attn, ms_deform_attn_reference

from .cases import CUDA, level_meta, make_inputs


# ---------------------------------------------------------------------------------------------- validation


def _bad(**changes):
    value, spatial, starts, loc, attn = make_inputs(n=2, m=2, d=4, lq=3, dtype=torch.float32)
    args = dict(value=value, spatial_shapes=spatial, level_start_index=starts, sampling_locations=loc,
                attention_weights=attn)
    for k, fn in changes.items():
        args[k] = fn(args[k])
    return args


BAD_INPUTS = {
    'value 3-d': (ValueError, 'value', dict(value=lambda t: t[0])),
    'batch mismatch': (ValueError, 'sampling_locations', dict(sampling_locations=lambda t: t[:1])),
    'heads mismatch': (ValueError, 'sampling_locations', dict(sampling_locations=lambda t: t[:, :, :1])),
    'weights shape': (ValueError, 'attention_weights', dict(attention_weights=lambda t: t[..., :1])),
    'levels mismatch': (ValueError, 'spatial_shapes', dict(spatial_shapes=lambda t: t[:1])),
    'start index shape': (ValueError, 'level_start_index', dict(level_start_index=lambda t: t[:1])),
    'sizes != S': (ValueError, 'spatial_shapes', dict(spatial_shapes=lambda t: t + 1)),
    'wrong starts': (ValueError, 'level_start_index', dict(level_start_index=lambda t: t + 1)),
    'int32 shapes': (TypeError, 'spatial_shapes', dict(spatial_shapes=lambda t: t.int())),
    'float start index': (TypeError, 'level_start_index', dict(level_start_index=lambda t: t.float())),
    'integer value': (TypeError, 'value', dict(value=lambda t: t.long())),
    'f64 locations, f32 value': (TypeError, 'sampling_locations', dict(sampling_locations=lambda t: t.double())),
    'f16 weights, f32 value': (TypeError, 'attention_weights', dict(attention_weights=lambda t: t.half())),
    'not a tensor': (TypeError, 'attention_weights', dict(attention_weights=lambda t: t.tolist())),
    'meta device': (ValueError, 'sampling_locations', dict(sampling_locations=lambda t: t.to('meta'))),
}


@pytest.mark.parametrize('backend', ['reference', 'cpu'])
@pytest.mark.parametrize('case', list(BAD_INPUTS))
def test_bad_input_raises_naming_the_argument(case, backend):
    exc, name, changes = BAD_INPUTS[case]
    with pytest.raises(exc, match=name):
        ms_deform_attn(**_bad(**changes), backend=backend)


def test_good_input_passes_validation():
    out = ms_deform_attn(**_bad(), backend='reference')
    assert out.shape == (2, 3, 8)


# ---------------------------------------------------------------------------------------------- backends


def test_unknown_backend_raises(fresh_backends, monkeypatch):
    with pytest.raises(ValueError, match='unknown backend'):
        ms_deform_attn(*make_inputs(), backend='triton-please')
    monkeypatch.setenv(functions.ENV_VAR, 'gpu')
    with pytest.raises(ValueError, match=functions.ENV_VAR):
        ms_deform_attn(*make_inputs())


def test_auto_and_env_var_choose_backend(fresh_backends, monkeypatch):
    assert ops.current_backend('cpu', torch.float32) == 'cpu'
    monkeypatch.setenv(functions.ENV_VAR, 'reference')
    functions.reset_backend_cache()
    assert ops.current_backend('cpu', torch.float32) == 'reference'
    # the argument beats the env var
    assert ops.current_backend('cpu', torch.float32, backend='cpu') == 'cpu'


def test_backend_choice_is_logged_once(fresh_backends, caplog):
    with caplog.at_level(logging.INFO, logger='ops.functions'):
        for _ in range(3):
            ms_deform_attn(*make_inputs(dtype=torch.float32), backend='auto')
    lines = [r.getMessage() for r in caplog.records if 'using the' in r.getMessage()]
    assert len(lines) == 1 and "'cpu' backend" in lines[0], lines


def test_cpu_backend_on_other_device_raises(fresh_backends):
    with pytest.raises(ValueError, match="backend 'cuda' needs cuda tensors"):
        ms_deform_attn(*make_inputs(), backend='cuda')


def test_failed_build_falls_back_once_in_auto_and_raises_when_explicit(fresh_backends, monkeypatch):
    def broken(kind, verbose=False):
        raise _build.ExtensionBuildError(f'no compiler for {kind} (simulated)')

    monkeypatch.setattr(_build, 'load_extension', broken)
    inputs = make_inputs()
    with pytest.warns(RuntimeWarning, match='falling back') as record:
        out = ms_deform_attn(*inputs, backend='auto')
        ms_deform_attn(*inputs, backend='auto')
        ms_deform_attn(*make_inputs(dtype=torch.float32), backend='auto')
    assert len([w for w in record if 'falling back' in str(w.message)]) == 1
    torch.testing.assert_close(out, ms_deform_attn_reference(*inputs))
    with pytest.raises(RuntimeError, match="backend 'cpu' was requested"):
        ms_deform_attn(*inputs, backend='cpu')


def test_build_cache_is_keyed_and_per_user(monkeypatch, tmp_path):
    monkeypatch.setenv('VIT_ADAPTER_OPS_CACHE', str(tmp_path))
    assert _build.cache_root() == tmp_path
    name = _build.extension_name('cpu')
    assert name.startswith('vit_adapter_msda_cpu_') and len(name.rsplit('_', 1)[1]) == 16
    assert _build.build_key('cpu') != _build.build_key('cuda')


def test_import_does_not_build():
    import subprocess
    import sys

    code = 'import ops, ops._build as b; assert not b.is_loaded("cpu") and not b.is_loaded("cuda"); print("ok")'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'ok'


# ---------------------------------------------------------------------------------------------- module


def _module_inputs(n=2, lq=5, c=32, shapes=((4, 4), (2, 2)), dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    spatial, starts = level_meta(shapes)
    s = int(spatial.prod(1).sum())
    query = torch.randn(n, lq, c, generator=g, dtype=dtype)
    ref = torch.rand(n, lq, len(shapes), 2, generator=g, dtype=dtype)
    x = torch.randn(n, s, c, generator=g, dtype=dtype)
    return query, ref, x, spatial, starts


def _module(backend, seed=0, **kw):
    torch.manual_seed(seed)
    m = ops.MSDeformAttn(32, 2, 2, 2, backend=backend, **kw)
    with torch.no_grad():  # non-trivial offsets and weights (the standard init zeroes their weights)
        m.sampling_offsets.weight.normal_(0, 0.1)
        m.attention_weights.weight.normal_(0, 0.1)
    return m


@pytest.mark.parametrize('ratio', [1.0, 0.5])
def test_module_cpu_matches_reference(ratio):
    q, ref, x, spatial, starts = _module_inputs()
    mask = torch.zeros(x.shape[:2], dtype=torch.bool)
    mask[1, -3:] = True
    outs = []
    for backend in ('reference', 'cpu'):
        m = _module(backend, ratio=ratio).double()
        out = m(q, ref, x, spatial, starts, mask)
        out.square().sum().backward()
        outs.append((out, m.value_proj.weight.grad, m.sampling_offsets.weight.grad))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def test_module_bf16_autocast_on_cpu():
    q, ref, x, spatial, starts = _module_inputs(dtype=torch.float32)
    m = _module('cpu')
    want = _module('reference')(q, ref, x, spatial, starts)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        got = m(q, ref, x, spatial, starts)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=5e-2, rtol=5e-2)


def test_torch_compile_fullgraph_matches_eager():
    """The op stays in one graph (custom op + fake + autograd); inductor on CPU, forward and backward."""
    q, ref, x, spatial, starts = _module_inputs(dtype=torch.float32)
    m = _module('cpu')
    eager = m(q, ref, x, spatial, starts)
    eager.sum().backward()
    eager_grad = m.value_proj.weight.grad.clone()
    m.zero_grad()
    compiled = torch.compile(m, fullgraph=True)
    out = compiled(q, ref, x, spatial, starts)
    out.sum().backward()
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(m.value_proj.weight.grad, eager_grad, atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
@CUDA
def test_module_cuda_matches_cpu():
    q, ref, x, spatial, starts = _module_inputs(dtype=torch.float32)
    want = _module('cpu')(q, ref, x, spatial, starts)
    got = _module('cuda').cuda()(q.cuda(), ref.cuda(), x.cuda(), spatial.cuda(), starts.cuda())
    torch.testing.assert_close(got.cpu(), want, atol=1e-5, rtol=1e-5)


_FAKE_BUILD = '''
import os, sys, time
import torch.utils.cpp_extension as ce
from ops import _build

def fake_load(name, sources, build_directory, **kwargs):
    with open(os.environ["BUILD_LOG"], "a") as f:
        f.write(f"start {time.time()}\\n")
    time.sleep(0.5)
    with open(os.environ["BUILD_LOG"], "a") as f:
        f.write(f"end {time.time()}\\n")
    raise RuntimeError("simulated compiler error")

ce.load = fake_load
try:
    _build.load_extension("cpu")
except _build.ExtensionBuildError as exc:
    print("build error:", exc)
'''


def test_concurrent_builds_are_serialised(tmp_path):
    """Two processes building the same key at once: the file lock makes the builds not overlap."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, VIT_ADAPTER_OPS_CACHE=str(tmp_path / 'cache'), BUILD_LOG=str(tmp_path / 'log'))
    procs = [subprocess.Popen([sys.executable, '-c', _FAKE_BUILD], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all('simulated compiler error' in o for o in outs), outs
    events = [line.split() for line in (tmp_path / 'log').read_text().splitlines()]
    assert [e[0] for e in events] == ['start', 'end', 'start', 'end'], events
    assert float(events[2][1]) >= float(events[1][1])  # the second build started after the first ended
