"""ops.bench: the backends are timed in alternating rounds, and the table is built from those timings."""
import pytest
import torch

from ops import bench


def test_backends_take_turns_within_each_round(monkeypatch):
    order = []
    real = bench.ms_deform_attn

    def recording(*args, backend, **kwargs):
        order.append(backend)
        return real(*args, backend=backend, **kwargs)

    monkeypatch.setattr(bench, 'ms_deform_attn', recording)
    inputs = bench.make_inputs('injector', 64, 1, 'cpu')
    # max_per_round=1: every backend runs exactly once per kind and round, after one warm-up and one probe.
    results = bench.bench_shape(inputs, ['reference', 'cpu'], 'cpu', rounds=3, max_per_round=1)
    timed = order[8:]  # 2 backends x 2 kinds x (warm-up + probe)
    assert timed == ['reference', 'cpu'] * 6, timed  # 3 rounds x (forward, forward+backward)
    for backend, (med_f, med_fb, min_f, min_fb) in results.items():
        assert 0 < min_f <= med_f and 0 < min_fb <= med_fb, backend


def test_run_writes_a_row_per_backend_with_ratios_to_the_reference(tmp_path):
    threads = torch.get_num_threads()
    try:
        rows = bench.run('cpu', sizes=(64,), batches=(1,), repeats=1, threads=1, calls=('extractor',),
                         out_dir=tmp_path)
    finally:
        torch.set_num_threads(threads)  # run() sets the thread count for the whole process
    assert [r['backend'] for r in rows] == ['reference', 'cpu']
    assert rows[0]['fwd_speedup'] == 1.0 and rows[0]['fwd_bwd_speedup'] == 1.0
    assert rows[1]['fwd_speedup'] == pytest.approx(rows[0]['fwd_ms'] / rows[1]['fwd_ms'])
    saved = list(tmp_path.glob('cpu_*.md'))
    assert len(saved) == 1 and '| extractor | 64 | 1 | cpu |' in saved[0].read_text()


def test_arch_shapes_follow_the_presets():
    from adapter.presets import get_preset
    for arch, (heads, channels) in bench.ARCH_SHAPES.items():
        p = get_preset(arch)
        assert (heads, channels) == (p['deform_heads'], int(p['embed_dim'] * p['deform_ratio']) // p['deform_heads'])


def test_run_takes_archs_and_dtypes(tmp_path):
    threads = torch.get_num_threads()
    try:
        rows = bench.run('cpu', sizes=(32,), batches=(1,), repeats=1, threads=1, calls=('injector',),
                         out_dir=tmp_path, archs=('B',), dtypes=('float32', 'bfloat16'), tag='_t')
    finally:
        torch.set_num_threads(threads)
    assert [(r['arch'], r['dtype'], r['backend']) for r in rows] == [
        ('B', 'float32', 'reference'), ('B', 'float32', 'cpu'), ('B', 'bfloat16', 'reference'), ('B', 'bfloat16', 'cpu')]
    text = next(tmp_path.glob('cpu_*_t.md')).read_text()
    assert '| injector | 32 | 1 | cpu | B | bfloat16 |' in text


def test_triton_is_timed_on_the_gpu_only(monkeypatch):
    """The Triton kernels join the GPU table; on the CPU (where they could only run in Triton's interpreter) the
    benchmark times the reference and the C++ kernel as before."""
    from ops import _build, functions, triton_msda

    def no_cuda_build(kind, verbose=False):
        if kind == 'cuda':
            raise _build.ExtensionBuildError('no nvcc (simulated)')
        return real(kind, verbose)

    real = _build.load_extension
    monkeypatch.setattr(_build, 'load_extension', no_cuda_build)
    monkeypatch.setattr(triton_msda, 'INTERPRET', True)  # even where the interpreter could run them
    monkeypatch.delenv(functions.ENV_VAR, raising=False)
    functions.reset_backend_cache()
    try:
        assert bench.available_backends('cpu') == ['reference', 'cpu']
        assert bench.available_backends('cuda') == ['reference', 'triton']  # the cuda kernel did not build
    finally:
        functions.reset_backend_cache()
