#!/usr/bin/env python3
"""``make gpu-check``: prove the GPU path of this suite on one machine, in one command, in a few minutes.

Needs only torch (CUDA build), nvcc, numpy and pytest: no mmcv / mmdet / mmseg / mmengine (they are blocked in this
process: importing one, even indirectly, fails the check), no virtual environment, no pip, no internet. Steps, each
timed and reported even when an earlier one failed (exit status 1 if any failed):

1. environment: python, torch, CUDA, GPU, nvcc, ``TORCH_CUDA_ARCH_LIST``;
2. build the op: ``ops._build.load_extension('cuda')`` for sm_90 plus whatever ``TORCH_CUDA_ARCH_LIST`` says
   (``--device cpu``: the CPU kernel);
3. ``pytest -m cuda tests/ops`` (the CUDA and the Triton kernels against the reference, fp64/fp32/fp16/bf16,
   gradients, the Triton backend's deterministic backward, no host sync, CUDA-graph capture, torch.compile; on a
   CPU machine they all skip);
4. the op benchmark (``ops.bench``): every backend of the device (reference, cuda, triton on a GPU), fp32 and bf16
   values, the ViT-Adapter S, B and L shapes at a 1024 input, batch 1 and 2, time relative to the memory floor, and
   the Triton/CUDA time ratio per row; saved under ``ops/bench_results/``;
5. the backbone benchmark (``adapter.bench_device``): plain ViT vs ViT-Adapter T/S/B/L at 1024, batch 2, bf16
   autocast, forward and forward+backward, peak memory, time ratio beside the FLOP ratio; saved under
   ``adapter/bench_results/``;
6. ATen calls per training step under the device's bf16 autocast (``adapter.launches``, ViT vs ViT-Adapter S and
   L at 256; the host-side cost that makes the adapter launch-bound), saved under ``adapter/bench_results/``;
7. with ``--compile MODE`` only (minutes of compilation): the backbone benchmark of S again with both models under
   ``torch.compile(mode=MODE)`` (``reduce-overhead``: CUDA graphs), saved beside the eager one.

A summary (steps, status, seconds, the files written) is printed and saved as
``ops/bench_results/<device>_<stamp>_gpucheck_summary.md``,
rewritten after every step (a run cut short by a time limit keeps what it measured).

Usage::

    python3 tools/gpu_check.py                      # CUDA, full shapes (about 3-5 min on an H200)
    python3 tools/gpu_check.py --device cpu --tiny  # CPU, small shapes, a few iterations (tests; ~30 s)
    make gpu-check [PY=python3] [DEVICE=cpu] [TINY=1]
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.abc
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ('mmcv', 'mmdet', 'mmseg', 'mmengine')
PYTEST_TIMEOUT_S = 600  # the Triton tests compile a few dozen kernel variants on first use


class _Forbid(importlib.abc.MetaPathFinder):
    """Makes ``import mmcv`` (and mmdet, mmseg, mmengine) fail in this process, so the check proves the GPU path
    does not need them even indirectly."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split('.')[0] in FORBIDDEN:
            raise ImportError(f'gpu_check: {fullname} imported on the GPU-check path; it must not need '
                              f'{"/".join(FORBIDDEN)} (the GPU machine has none)')
        return None


def forbid_mm() -> None:
    loaded = [m for m in sys.modules if m.split('.')[0] in FORBIDDEN]
    if loaded:
        raise RuntimeError(f'gpu_check: already imported: {loaded}')
    sys.meta_path.insert(0, _Forbid())


def arch_list(env: str | None) -> str:
    """sm_90 ('9.0') plus the entries of ``TORCH_CUDA_ARCH_LIST`` (';' or space separated), without repeats."""
    items = ['9.0'] + [a for a in (env or '').replace(';', ' ').split() if a]
    seen = []
    for a in items:
        if a not in seen:
            seen.append(a)
    return ';'.join(seen)


def _environment(device: str) -> list[str]:
    import torch
    lines = [f'python {platform.python_version()} ({sys.executable})', f'torch {torch.__version__}, CUDA '
             f'{torch.version.cuda}, cuda available: {torch.cuda.is_available()}']
    if device == 'cuda':
        if not torch.cuda.is_available():
            raise RuntimeError('gpu_check: --device cuda but torch sees no GPU (use DEVICE=cpu for the CPU run)')
        p = torch.cuda.get_device_properties(0)
        lines.append(f'GPU {p.name}, {p.total_memory / 2 ** 30:.0f} GiB, sm_{p.major}{p.minor}, '
                     f'{p.multi_processor_count} SMs')
        nvcc = shutil.which('nvcc') or (os.path.join(os.environ['CUDA_HOME'], 'bin', 'nvcc')
                                        if os.environ.get('CUDA_HOME') else None)
        if nvcc and os.path.exists(nvcc):
            out = subprocess.run([nvcc, '--version'], capture_output=True, text=True).stdout.strip().splitlines()
            lines.append(f'nvcc: {out[-1] if out else "?"} ({nvcc})')
        else:
            lines.append('nvcc: not found (the build will fail; put it on PATH or set CUDA_HOME)')
        lines.append(f'TORCH_CUDA_ARCH_LIST={os.environ.get("TORCH_CUDA_ARCH_LIST")}')
        from ops import triton_msda
        ok, version = triton_msda.available()
        lines.append(f'triton {version}' + ('' if ok else ' (the triton backend and its tests will fail)'))
    else:
        lines.append(f'CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, '
                     f'torch threads {torch.get_num_threads()}')
    return lines


def _build(device: str) -> list[str]:
    from ops import _build, functions
    kind = 'cuda' if device == 'cuda' else 'cpu'
    t0 = time.perf_counter()
    was = _build.is_loaded(kind)
    mod = _build.load_extension(kind)
    functions.reset_backend_cache()
    where = _build.cache_root() / _build.extension_name(kind)
    return [f'{kind} kernel {"already loaded" if was else "built or loaded from cache"} in '
            f'{time.perf_counter() - t0:.1f} s: {where} ({mod.__name__})']


def _pytest(device: str, out_dir: Path, stamp: str) -> list[str]:
    log = out_dir / f'{device}_{stamp}_gpucheck_pytest.log'
    cmd = [sys.executable, '-m', 'pytest', '-m', 'cuda', '-q', '-rs', '-p', 'no:cacheprovider', 'tests/ops']
    env = dict(os.environ)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT_S)
    log.write_text(f'$ {" ".join(cmd)}\n\n{proc.stdout}\n{proc.stderr}')
    tail = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()][-1:] or ['(no output)']
    ok = proc.returncode == 0 or (proc.returncode == 5 and device != 'cuda')
    if not ok:
        raise RuntimeError(f'pytest -m cuda exited {proc.returncode}: {tail[0]} (log {log})')
    if device == 'cuda' and ' skipped' in tail[0] and ' passed' not in tail[0]:
        raise RuntimeError(f'pytest -m cuda ran nothing on the GPU: {tail[0]} (log {log})')
    return [f'pytest -m cuda tests/ops: {tail[0]}', f'log: {_rel(log)}']


SHORT = {'float32': 'fp32', 'bfloat16': 'bf16'}


def _op_bench(device: str, tiny: bool, out_dir: Path) -> tuple[list[str], Path]:
    from ops import bench
    if tiny:
        kw = dict(sizes=(64,), batches=(1,), repeats=1, archs=('S', 'L'))
    else:
        kw = dict(sizes=(1024,), batches=(1, 2), repeats=5, archs=('S', 'B', 'L'))
    print(bench.TABLE_HEAD)
    rows = bench.run(device, calls=('injector', 'extractor'), threads=os.cpu_count() if device == 'cuda' else 2,
                     out_dir=out_dir, dtypes=('float32', 'bfloat16'), tag='_gpucheck', **kw)
    md = sorted(out_dir.glob(f'{device}_*_gpucheck.md'))[-1]
    return [f'{len(rows)} rows ({sorted({r["backend"] for r in rows})}), table {_rel(md)}'] + kernel_lines(rows), md


def _label(r: dict) -> str:
    return f"{r['arch']}/{SHORT.get(r['dtype'], r['dtype'])}/{r['call'][:3]}/b{r['batch']}"


def kernel_lines(rows: list[dict]) -> list[str]:
    """Summary lines of the op table: each kernel's fwd+bwd time over the memory floor and, where the Triton and the
    CUDA kernel were both timed, Triton's time over CUDA's (fwd / fwd+bwd; below 1: Triton is faster)."""
    lines = []
    for backend in sorted({r['backend'] for r in rows} - {'reference'}):
        lines.append(f'{backend} fwd+bwd x memory floor: ' + ', '.join(
            f"{_label(r)} {r['fwd_bwd_x_floor']:.0f}x" for r in rows if r['backend'] == backend))
    cuda = {_label(r): r for r in rows if r['backend'] == 'cuda'}
    pairs = [(r, cuda[_label(r)]) for r in rows if r['backend'] == 'triton' and _label(r) in cuda]
    if pairs:
        lines.append('triton / cuda time, fwd and fwd+bwd: ' + ', '.join(
            f"{_label(t)} {t['fwd_ms'] / c['fwd_ms']:.2f} / {t['fwd_bwd_ms'] / c['fwd_bwd_ms']:.2f}"
            for t, c in pairs))
    return lines


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def _backbone_bench(device: str, tiny: bool, out_dir: Path, compile_mode: str | None = None) -> list[str]:
    """The backbone table: T/S/B/L eager, or with ``compile_mode`` S under ``torch.compile(mode=compile_mode)``
    (tiny: one small arch, one call)."""
    from adapter import bench_device
    if tiny:
        kw = dict(archs=('T',) if compile_mode is None else ('tiny',), size=64, batch=1, iters=1, warmup=0)
    else:
        kw = dict(archs=('T', 'S', 'B', 'L') if compile_mode is None else ('S',), size=1024, batch=2, iters=10,
                  warmup=3)
    rows, md = bench_device.run(device=device, dtype='bfloat16', out_dir=out_dir,
                                tag='_gpucheck' if compile_mode is None else '_gpucheck_compiled',
                                compile=None if compile_mode is None else {'mode': compile_mode}, **kw)
    what = '' if compile_mode is None else f' compiled ({compile_mode})'
    return [f"{r['arch']}{what}: fwd+bwd {r['fwdbwd_vit_ms']:.1f} / {r['fwdbwd_adapter_ms']:.1f} ms, time ratio "
            f"{r['fwdbwd_time_ratio']:.2f} vs FLOP ratio {r['flop_ratio']:.2f}" for r in rows] + [f'table {_rel(md)}']


def _launches(device: str, tiny: bool, out_dir: Path) -> list[str]:
    from adapter import launches
    archs, size = (('tiny',), 64) if tiny else (('S', 'L'), 256)
    rows = launches.run(archs, size=size, batch=2, device=device, top=12, save=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')
    path = out_dir / f'launches_{device}_{stamp}_gpucheck.md'
    path.write_text('\n'.join([launches.HEAD] + [launches.fmt_row(r) for r in rows]
                              + ['', launches.fmt_top(rows[-1], 20)]) + '\n')
    return [f"{r['arch']}: {r['adapter']['compute']} compute calls vs ViT {r['vit']['compute']} "
            f"({r['compute_ratio']:.2f}x, FLOP ratio {r['flop_ratio']:.2f})" for r in rows] + [f'table {_rel(path)}']


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--device', choices=['cuda', 'cpu'], default=os.environ.get('DEVICE') or 'cuda')
    ap.add_argument('--tiny', action='store_true', default=os.environ.get('TINY', '') not in ('', '0'),
                    help='small shapes, a few iterations (default on with --device cpu)')
    ap.add_argument('--ops-out', type=Path, default=ROOT / 'ops' / 'bench_results',
                    help='where the op tables, the pytest log and the summary go')
    ap.add_argument('--adapter-out', type=Path, default=ROOT / 'adapter' / 'bench_results',
                    help='where the backbone tables go')
    ap.add_argument('--skip', nargs='*', default=[], choices=['build', 'pytest', 'ops', 'backbone', 'launches'])
    ap.add_argument('--compile', metavar='MODE', default=None,
                    choices=['default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs'],
                    help='also time the S backbone under torch.compile(mode=MODE) (minutes of compilation)')
    args = ap.parse_args(argv)
    tiny = args.tiny or args.device == 'cpu'
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    forbid_mm()
    if args.device == 'cuda':
        os.environ['TORCH_CUDA_ARCH_LIST'] = arch_list(os.environ.get('TORCH_CUDA_ARCH_LIST'))
    stamp = dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')
    out_dir = args.ops_out.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    steps = [('environment', lambda: _environment(args.device)), ('build', lambda: _build(args.device)),
             ('pytest', lambda: _pytest(args.device, out_dir, stamp)),
             ('ops', lambda: _op_bench(args.device, tiny, out_dir)[0]),
             ('backbone', lambda: _backbone_bench(args.device, tiny, args.adapter_out.resolve())),
             ('launches', lambda: _launches(args.device, tiny, args.adapter_out.resolve()))]
    if args.compile:
        steps.append(('compiled', lambda: _backbone_bench(args.device, tiny, args.adapter_out.resolve(),
                                                          args.compile)))
    results, t_all = [], time.perf_counter()
    path = out_dir / f'{args.device}_{stamp}_gpucheck_summary.md'

    def write_summary(final: bool) -> list[str]:
        # rewritten after every step: a run cut short (a device-time limit) still leaves what it measured
        done = '' if final else f', still running ({len(results)} of {len(steps)} steps done)'
        summary = [f'# gpu-check {args.device}{" (tiny)" if tiny else ""}, {stamp} UTC, '
                   f'{time.perf_counter() - t_all:.0f} s in all{done}', '',
                   '| step | status | seconds | result |', '|---|---|---|---|']
        summary += [f'| {n} | {s} | {t:.1f} | {"<br>".join(ln.replace("|", "/") for ln in lines)} |'
                    for n, s, t, lines in results]
        path.write_text('\n'.join(summary) + '\n')
        return summary

    for name, fn in steps:
        if name in args.skip:
            results.append((name, 'skipped', 0.0, []))
            continue
        print(f'\n== gpu-check: {name} ==', flush=True)
        t0 = time.perf_counter()
        try:
            lines, status = fn(), 'ok'
        except Exception as exc:  # report and go on: one run gives every answer it can
            traceback.print_exc()
            lines, status = [f'{type(exc).__name__}: {exc}'], 'FAILED'
        results.append((name, status, time.perf_counter() - t0, lines))
        for ln in lines:
            print(f'  {ln}', flush=True)
        write_summary(final=False)
    summary = write_summary(final=True)
    print('\n' + '\n'.join(summary) + f'\n\nsaved {path}')
    return 1 if any(s == 'FAILED' for _, s, _, _ in results) else 0


if __name__ == '__main__':
    sys.exit(main())
