"""``make gpu-check`` (tools/gpu_check.py) run on the CPU in its tiny mode: every step passes, the tables are
written where asked, and nothing on the path imports mmcv / mmdet / mmseg / mmengine (the GPU machine has none)."""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location('gpu_check', ROOT / 'tools' / 'gpu_check.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_arch_list_always_has_sm90():
    gc = _load()
    assert gc.arch_list(None) == '9.0'
    assert gc.arch_list('8.0;9.0') == '9.0;8.0'
    assert gc.arch_list('8.6 10.0+PTX') == '9.0;8.6;10.0+PTX'


def test_tiny_cpu_run_writes_every_table_and_imports_no_mm(tmp_path):
    # Poisoned mmcv/mmdet/mmseg/mmengine first on the path: any import of them, in the driver or in the pytest it
    # starts, fails (the driver also blocks them in its own process).
    poison = tmp_path / 'poison'
    for name in ('mmcv', 'mmdet', 'mmseg', 'mmengine'):
        (poison / name).mkdir(parents=True)
        (poison / name / '__init__.py').write_text(f'raise ImportError("{name} imported on the gpu-check path")\n')
    ops_out, ad_out = tmp_path / 'ops', tmp_path / 'adapter'
    env = dict(os.environ, DEVICE='cpu', PYTHONPATH=os.pathsep.join([str(poison), str(ROOT)]))
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'gpu_check.py'), '--ops-out', str(ops_out),
                           '--adapter-out', str(ad_out)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    summary = next(ops_out.glob('cpu_*_gpucheck_summary.md')).read_text()
    for step in ('environment', 'build', 'pytest', 'ops', 'backbone', 'launches'):
        assert f'| {step} | ok |' in summary, summary
    assert 'skipped' in summary  # the cuda tests were collected (and skip without a GPU)
    assert 'imported on the gpu-check path' not in proc.stdout + proc.stderr

    rows = list(csv.DictReader(next(ops_out.glob('cpu_*_gpucheck.csv')).open()))
    got = {(r['arch'], r['dtype'], r['call'], r['backend']) for r in rows}
    assert got == {(a, t, c, b) for a in ('S', 'L') for t in ('float32', 'bfloat16')
                   for c in ('injector', 'extractor') for b in ('reference', 'cpu')}
    assert all(float(r['fwd_bwd_x_floor']) > 0 and float(r['fwd_bwd_ms']) > 0 for r in rows)
    op_md = next(ops_out.glob('cpu_*_gpucheck.md')).read_text()
    assert 'fwd+bwd x floor' in op_md and '| injector | 64 | 1 | cpu | L | bfloat16 |' in op_md

    bb = json.loads(next(ad_out.glob('cpu_*_gpucheck.json')).read_text())
    assert [r['arch'] for r in bb] == ['T'] and bb[0]['dtype'] == 'bfloat16'
    for mode in ('fwd', 'fwdbwd'):
        assert bb[0][f'{mode}_vit_ms'] > 0 and bb[0][f'{mode}_adapter_ms'] > 0
        assert bb[0][f'{mode}_ratio_of_ratios'] == pytest.approx(bb[0][f'{mode}_time_ratio'] / bb[0]['flop_ratio'])
    assert bb[0]['flop_ratio'] > 1
    bb_md = next(ad_out.glob('cpu_*_gpucheck.md')).read_text()
    assert 'time ratio / FLOP ratio' in bb_md and bb_md.count('\n| T |') == 1
    launches = next(ad_out.glob('launches_cpu_*_gpucheck.md')).read_text()
    assert launches.count('\n| tiny |') == 1 and '| _to_copy |' in launches


def test_op_summary_times_triton_beside_cuda():
    """On the GPU the op table has reference, cuda and triton rows; the summary gives each kernel's distance to the
    memory floor and Triton's time over CUDA's for every (arch, dtype, call, batch)."""
    gc = _load()
    rows = []
    for dtype in ('float32', 'bfloat16'):
        for backend, fwd, fwd_bwd in (('reference', 2.0, 8.0), ('cuda', 0.2, 0.8), ('triton', 0.1, 0.6)):
            rows.append(dict(arch='S', dtype=dtype, call='injector', batch=1, backend=backend, fwd_ms=fwd,
                             fwd_bwd_ms=fwd_bwd, fwd_bwd_x_floor=fwd_bwd / 0.05))
    lines = gc.kernel_lines(rows)
    assert lines[0] == 'cuda fwd+bwd x memory floor: S/fp32/inj/b1 16x, S/bf16/inj/b1 16x'
    assert lines[1] == 'triton fwd+bwd x memory floor: S/fp32/inj/b1 12x, S/bf16/inj/b1 12x'
    assert lines[2] == 'triton / cuda time, fwd and fwd+bwd: S/fp32/inj/b1 0.50 / 0.75, S/bf16/inj/b1 0.50 / 0.75'
    assert gc.kernel_lines([r for r in rows if r['backend'] != 'triton']) == lines[:1]
