"""``python -m adapter.bench`` (``make bench-adapter``): ViT vs ViT-Adapter speed and memory on CPU.

For each arch, the plain ViT trunk (``VisionTransformer``: patch embed + blocks, global attention; the
adapter's own trunk, drop path and layer scale included: ``bench_device.build``) and the
ViT-Adapter backbone (deformable attention, ``ops`` backend chosen as usual: ``VIT_ADAPTER_MSDA_BACKEND`` or
auto = the compiled CPU kernel when it builds) run on a (B, 3, S, S) input: forward (no grad) and
forward+backward (sum of outputs). Time: median over ``--iters`` after one warm-up, the two models interleaved
in one process (so load drift on a shared machine hits both alike). Memory: peak resident memory of the first
full-size run above the level before it (Linux VmHWM, reset through /proc/self/clear_refs; one process per
model). The time ratio adapter/ViT is printed beside the FLOP ratio (forward GMACs counted by ``adapter.flops``);
the target is time ratio <= 1.1 x FLOP ratio.

Usage:
    python -m adapter.bench [--archs T S B] [--size 512] [--batch 1] [--iters 3] [--threads N]
                            [--malloc tuned|default]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from typing import Dict

import torch

from .bench_device import build


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _runner(model, x, mode: str):
    def run():
        if mode == 'fwd':
            model.eval()
            with torch.no_grad():
                model(x)
        else:
            model.train()
            out = model(x)
            out = out if isinstance(out, (tuple, list)) else [out]
            sum(o.float().sum() for o in out).backward()
            model.zero_grad(set_to_none=True)
    return run


def _setup(threads: int, malloc: str) -> None:
    if malloc == 'tuned':
        from ops.allocator import tune_glibc_malloc
        tune_glibc_malloc()
    torch.set_num_threads(threads)


def _time_pair(arch: str, mode: str, size: int, batch: int, iters: int, threads: int, malloc: str, q) -> None:
    """Both models in one process, runs interleaved (ViT, adapter, ViT, ...) so load drift hits both alike."""
    _setup(threads, malloc)
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    runs = {k: _runner(build(k, arch), x, mode) for k in ('vit', 'adapter')}
    for run in runs.values():
        run()  # warm-up (and kernel build / load)
    times = {k: [] for k in runs}
    for _ in range(iters):
        for k, run in runs.items():
            t = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t)
    q.put({k: statistics.median(v) for k, v in times.items()})


def _peak_memory(kind: str, arch: str, mode: str, size: int, batch: int, threads: int, malloc: str, q) -> None:
    """Peak resident memory (MB) of the first full-size run above the level before it, in its own process
    (a 64x64 warm-up first loads libraries and kernels; the allocator has no cached full-size buffers yet)."""
    _setup(threads, malloc)
    torch.manual_seed(0)
    model = build(kind, arch)
    _runner(model, torch.randn(1, 3, 64, 64), mode)()
    run = _runner(model, torch.randn(batch, 3, size, size), mode)
    base = _rss_kb('VmRSS')
    ok = _reset_peak()
    run()
    q.put((_rss_kb('VmHWM') - base) / 1024 if ok else float('nan'))


def _in_process(target, *args):
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    p = ctx.Process(target=target, args=args + (q,))
    p.start()
    res = q.get()
    p.join()
    return res


def measure(arch: str, mode: str, size: int = 512, batch: int = 1, iters: int = 3,
            threads: int = None, malloc: str = 'tuned') -> Dict[str, Dict[str, float]]:
    """{'vit': {time, peak_mb}, 'adapter': {time, peak_mb}} for one arch and mode ('fwd' | 'fwdbwd')."""
    threads = threads or torch.get_num_threads()
    times = _in_process(_time_pair, arch, mode, size, batch, iters, threads, malloc)
    return {k: dict(time=times[k], peak_mb=_in_process(_peak_memory, k, arch, mode, size, batch, threads, malloc))
            for k in ('vit', 'adapter')}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--archs', nargs='+', default=['T', 'S', 'B'])
    ap.add_argument('--size', type=int, default=512)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--threads', type=int, default=None)
    ap.add_argument('--json', help='also write the rows to this JSON file')
    ap.add_argument('--malloc', choices=['tuned', 'default'], default='tuned',
                    help='tuned (default): ops.allocator.tune_glibc_malloc() in each measuring process (large '
                         'tensors reuse memory instead of page-faulting fresh mmap regions); default: glibc as is')
    args = ap.parse_args(argv)
    from .flops import backbone_flops
    backend = os.environ.get('VIT_ADAPTER_MSDA_BACKEND', 'auto')
    print(f'CPU, {args.threads or torch.get_num_threads()} threads, input {args.batch}x3x{args.size}x{args.size}, '
          f'MSDeformAttn backend {backend}; median of {args.iters}; peak = resident memory of the first full-size '
          f'run above the level before it; malloc {args.malloc} (see ops/allocator.py)')
    print('| arch | GMACs ViT / adapter (ratio) | fwd s ViT / adapter (ratio) | fwd+bwd s ViT / adapter (ratio) | '
          'peak MB fwd+bwd ViT / adapter | time ratio / FLOP ratio (fwd, fwd+bwd) |')
    print('|---|---|---|---|---|---|')
    rows = []
    for arch in args.archs:
        fl_vit = backbone_flops(build('vit', arch), (args.size, args.size))['total']
        fl_ad = backbone_flops(build('adapter', arch), (args.size, args.size))['total']
        r = {m: measure(arch, m, args.size, args.batch, args.iters, args.threads, args.malloc) for m in ('fwd', 'fwdbwd')}
        fr = fl_ad / fl_vit
        tf = r['fwd']['adapter']['time'] / r['fwd']['vit']['time']
        tb = r['fwdbwd']['adapter']['time'] / r['fwdbwd']['vit']['time']
        rows.append(dict(arch=arch, gmacs_vit=fl_vit, gmacs_adapter=fl_ad, results=r))
        print(f"| {arch} | {fl_vit:.1f} / {fl_ad:.1f} ({fr:.2f}) | {r['fwd']['vit']['time']:.2f} / "
              f"{r['fwd']['adapter']['time']:.2f} ({tf:.2f}) | {r['fwdbwd']['vit']['time']:.2f} / "
              f"{r['fwdbwd']['adapter']['time']:.2f} ({tb:.2f}) | {r['fwdbwd']['vit']['peak_mb']:.0f} / "
              f"{r['fwdbwd']['adapter']['peak_mb']:.0f} | {tf / fr:.2f}, {tb / fr:.2f} |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
