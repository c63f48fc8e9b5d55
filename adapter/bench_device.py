"""Plain ViT vs ViT-Adapter on one device (``python -m adapter.bench_device``; part of ``make gpu-check``).

For each arch (T/S/B/L by default), the plain ViT trunk (``VisionTransformer``: patch embed + blocks, global
attention; the adapter's own trunk, drop path and layer scale as the preset) and the ViT-Adapter backbone
(``ViTAdapter(arch)``, global attention, the deformable attention on the ``ops`` backend chosen as usual) run on a
(B, 3, S, S) input under ``torch.autocast(dtype)`` (bf16 by default, the paper configs' AMP): forward (eval, no
grad) and forward+backward (train mode, sum of the outputs). Times are medians over ``iters`` calls after
``warmup`` calls, each call synchronised; the two models alternate call by call so a slow spell hits both. Peak
memory: ``torch.cuda.max_memory_allocated`` over the timed calls of that model and mode, reset before them (CUDA
only; '-' on CPU). The time ratio adapter/ViT is printed beside the FLOP ratio
(forward MACs counted by ``adapter.flops.backbone_flops``, fp32, batch 1): a ratio of ratios near 1 means the
adapter costs what its arithmetic says; far above 1, launch overhead or slow kernels.

No mmcv/mmdet/mmengine import (pure torch + this suite). The CPU-only, process-per-model benchmark with resident
memory is ``adapter.bench``.

Usage::

    python -m adapter.bench_device --device cuda                       # T S B L, 1024, batch 2, bf16
    python -m adapter.bench_device --device cpu --archs T --size 64 --batch 1 --iters 1 --warmup 0
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / 'bench_results'
DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}


def build(kind: str, arch: str) -> torch.nn.Module:
    """'vit': the plain ViT trunk of ``arch``; 'adapter': ``ViTAdapter(arch)`` (both global attention).

    The plain ViT is the adapter's own trunk module (``ViTAdapter(arch).vit``: the preset's sizes, drop-path rate
    and layer scale), so that both run the same blocks and the time ratio is what the adapter adds."""
    from .backbone import ViTAdapter
    if kind == 'vit':
        return ViTAdapter(arch).vit
    if kind == 'adapter':
        return ViTAdapter(arch)
    raise ValueError(f"build: kind must be 'vit' or 'adapter', got {kind!r}")


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _call(model, x, mode: str, dtype: torch.dtype):
    device_type = x.device.type
    amp = dtype != torch.float32

    def run():
        if mode == 'fwd':
            with torch.no_grad(), torch.autocast(device_type, dtype=dtype, enabled=amp):
                model(x)
        else:
            with torch.autocast(device_type, dtype=dtype, enabled=amp):
                out = model(x)
            out = out if isinstance(out, (tuple, list)) else [out]
            sum(o.float().sum() for o in out).backward()
            model.zero_grad(set_to_none=True)
    return run


def flop_ratio(arch: str, size: int, device: torch.device, models: dict | None = None) -> tuple[float, float]:
    """(ViT GMACs, adapter GMACs) of one forward at batch 1, counted on ``device``."""
    from .flops import backbone_flops
    out = []
    for kind in ('vit', 'adapter'):
        model = models[kind] if models else build(kind, arch).to(device)
        out.append(backbone_flops(model, (size, size), call=lambda m, x: m(x.to(device)))['total'])
    return out[0], out[1]


def measure(arch: str, device: str = 'cuda', size: int = 1024, batch: int = 2, dtype: str = 'bfloat16',
            iters: int = 10, warmup: int = 3, modes=('fwd', 'fwdbwd'), compile: dict | None = None) -> dict:
    """One row: times (s), peak memory (GiB, CUDA) of ViT and adapter per mode, GMACs and the ratios.

    ``compile``: ``torch.compile`` arguments (e.g. ``{'mode': 'reduce-overhead'}``) applied to both models alike
    (after the FLOP count); the warm-up calls then include the compilation (at least 2 are made)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    models = {k: build(k, arch).to(dev) for k in ('vit', 'adapter')}
    gmacs = flop_ratio(arch, size, dev, models)
    if compile is not None:
        models = {k: torch.compile(m, **compile) for k, m in models.items()}
        warmup = max(warmup, 2)
    x = torch.randn(batch, 3, size, size, device=dev)
    row = dict(arch=arch, size=size, batch=batch, dtype=dtype, device=str(dev), gmacs_vit=gmacs[0],
               gmacs_adapter=gmacs[1], flop_ratio=gmacs[1] / gmacs[0], compile=compile)
    for mode in modes:
        runs = {k: _call(m.train(mode != 'fwd'), x, mode, DTYPES[dtype]) for k, m in models.items()}
        peak, times = {}, {k: [] for k in runs}
        for k, run in runs.items():  # warm-up (kernel builds, cudnn autotuning, allocator), then peak per model
            for _ in range(max(warmup, 0)):
                run()
            _sync(dev)
            if dev.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(dev)
                run()
                _sync(dev)
                peak[k] = torch.cuda.max_memory_allocated(dev) / 2 ** 30
            else:
                peak[k] = float('nan')
        for _ in range(iters):
            for k, run in runs.items():
                t0 = time.perf_counter()
                run()
                _sync(dev)
                times[k].append(time.perf_counter() - t0)
        for k in runs:
            row[f'{mode}_{k}_ms'] = statistics.median(times[k]) * 1e3
            row[f'{mode}_{k}_peak_gib'] = peak[k]
        row[f'{mode}_time_ratio'] = row[f'{mode}_adapter_ms'] / row[f'{mode}_vit_ms']
        row[f'{mode}_ratio_of_ratios'] = row[f'{mode}_time_ratio'] / row['flop_ratio']
    del models
    if dev.type == 'cuda':
        torch.cuda.empty_cache()
    return row


HEAD = ('| arch | GMACs ViT / adapter (FLOP ratio) | fwd ms ViT / adapter (time ratio) | fwd+bwd ms ViT / adapter '
        '(time ratio) | peak GiB fwd+bwd ViT / adapter | time ratio / FLOP ratio (fwd, fwd+bwd) |')


def fmt_row(r: dict) -> str:
    return (f"| {r['arch']} | {r['gmacs_vit']:.1f} / {r['gmacs_adapter']:.1f} ({r['flop_ratio']:.2f}) | "
            f"{r['fwd_vit_ms']:.1f} / {r['fwd_adapter_ms']:.1f} ({r['fwd_time_ratio']:.2f}) | "
            f"{r['fwdbwd_vit_ms']:.1f} / {r['fwdbwd_adapter_ms']:.1f} ({r['fwdbwd_time_ratio']:.2f}) | "
            f"{_gib(r['fwdbwd_vit_peak_gib'])} / {_gib(r['fwdbwd_adapter_peak_gib'])} | "
            f"{r['fwd_ratio_of_ratios']:.2f}, {r['fwdbwd_ratio_of_ratios']:.2f} |")


def _gib(v: float) -> str:
    return '-' if v != v else f'{v:.1f}'


def header(device: str, size: int, batch: int, dtype: str, iters: int, warmup: int,
           compile: dict | None = None) -> str:
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else (platform.processor() or platform.machine())
    from ops import current_backend
    try:
        backend = current_backend(dev, DTYPES[dtype])
    except RuntimeError as exc:
        backend = f'unavailable ({exc})'
    return (f'Backbone benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, '
            f'device {device} ({name}); input {batch}x3x{size}x{size}, autocast {dtype}, train mode for fwd+bwd, '
            f'global attention in every block; MSDeformAttn backend {backend}; median of {iters} synchronised calls '
            f'after {warmup} warm-up calls, ViT and adapter alternating; peak = torch.cuda.max_memory_allocated of '
            f'one call (CUDA only); GMACs = forward at batch 1 (adapter.flops.backbone_flops).'
            + (f' Both models under torch.compile({", ".join(f"{k}={v!r}" for k, v in compile.items())}).'
               if compile is not None else ''))


def run(archs=('T', 'S', 'B', 'L'), device: str = 'cuda', size: int = 1024, batch: int = 2, dtype: str = 'bfloat16',
        iters: int = 10, warmup: int = 3, out_dir: Path | None = RESULTS_DIR, tag: str = '',
        compile: dict | None = None) -> tuple[list, Path | None]:
    """Measure every arch, print the table, save it (markdown + JSON) under ``out_dir``; returns (rows, md path)."""
    head = header(device, size, batch, dtype, iters, warmup, compile)
    print(head)
    print(HEAD)
    print('|---|---|---|---|---|---|', flush=True)
    rows = []
    for arch in archs:
        rows.append(measure(arch, device, size, batch, dtype, iters, warmup, compile=compile))
        print(fmt_row(rows[-1]), flush=True)
    if out_dir is None:
        return rows, None
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')
    base = out_dir / f"{torch.device(device).type}_{stamp}{tag}"
    md = Path(f'{base}.md')
    md.write_text('\n'.join([head, '', HEAD, '|---|---|---|---|---|---|'] + [fmt_row(r) for r in rows]) + '\n')
    Path(f'{base}.json').write_text(json.dumps(rows, indent=1))
    print(f'saved {md} and {base}.json')
    return rows, md


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--archs', nargs='+', default=['T', 'S', 'B', 'L'])
    ap.add_argument('--size', type=int, default=1024)
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--dtype', choices=sorted(DTYPES), default='bfloat16')
    ap.add_argument('--iters', type=int, default=10)
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--compile', metavar='MODE', default=None,
                    help="torch.compile both models with this mode (e.g. reduce-overhead: CUDA graphs)")
    ap.add_argument('--no-save', action='store_true')
    args = ap.parse_args(argv)
    run(tuple(args.archs), args.device, args.size, args.batch, args.dtype, args.iters, args.warmup,
        None if args.no_save else RESULTS_DIR, tag='_compiled' if args.compile else '',
        compile=None if args.compile is None else {'mode': args.compile})


if __name__ == '__main__':
    main()
