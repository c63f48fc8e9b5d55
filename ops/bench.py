"""Benchmark ``ms_deform_attn`` backends at ViT-Adapter-S shapes (``make bench-ops``).

Shapes (ViT-Adapter-S: embed 384, 6 heads x 64 channels, 4 points):

- injector: queries are the ViT tokens at 1/16; values the spatial-prior features at 1/8, 1/16, 1/32.
- extractor: queries are the spatial-prior tokens at 1/8, 1/16, 1/32; values the ViT tokens at 1/16.

Sampling locations are realistic: each query's reference point (its pixel centre, normalised) plus offsets
of a few pixels on each level; attention weights are a softmax over (levels, points).

For every backend available on the device (CPU: reference, cpu; GPU: reference, cuda, triton; the Triton
kernels are not timed on a CPU, where they would run in Triton's interpreter): median forward time (no autograd)
and median forward+backward time (value, locations and weights need gradients), the backends timed in alternating
rounds so that a noisy spell on a shared machine slows the reference and the kernel alike, the speed-up over the
reference, and the achieved bandwidth against the memory floor. The floor assumes every tensor crosses DRAM
exactly once per pass: forward reads value, locations, weights and writes the output; backward reads grad_output, value,
locations, weights and writes their three gradients. The machine's copy bandwidth is measured in the same
run (a 256 MiB tensor copy, read + write counted), so ``x floor`` = measured time / (floor bytes / copy BW).

Results are printed and saved as markdown + CSV under ``ops/bench_results/`` (timestamped, never
overwritten).

Usage::

    python -m ops.bench                       # CPU, 2 threads, 512 and 1024 inputs, batch 1 and 2
    python -m ops.bench --device cuda         # every backend available on the GPU (reference, cuda, triton)
    python -m ops.bench --device cuda --archs S B L --dtypes float32 bfloat16 --sizes 1024
    python -m ops.bench --sizes 512 --batches 1 --repeats 3
    python -m ops.bench --readme              # also refresh the table in ops/README.md
    python -m ops.bench --malloc default      # glibc's default allocator (see ops/allocator.py)
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from . import allocator, functions
from .functions import ms_deform_attn

HEADS, CHANNELS, POINTS = 6, 64, 4
# (deformable heads, value channels per head) of each ViT-Adapter size: deform_heads and
# embed_dim * deform_ratio / deform_heads of adapter/presets.py (tests/ops/test_bench.py checks they agree).
ARCH_SHAPES = {'T': (6, 32), 'S': (6, 64), 'B': (12, 32), 'L': (16, 32)}
DTYPES = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float64': torch.float64}
RESULTS_DIR = Path(__file__).resolve().parent / 'bench_results'


def _levels(size: int, strides: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(size // s, size // s) for s in strides]


def _reference_points(shapes: list[tuple[int, int]]) -> torch.Tensor:
    """Pixel centres of all positions of ``shapes`` (concatenated), normalised (x, y): (Lq, 2)."""
    pts = []
    for h, w in shapes:
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing='ij')
        pts.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], -1))
    return torch.cat(pts)


def make_inputs(call: str, size: int, batch: int, device: str, dtype=torch.float32, seed: int = 0,
                heads: int = HEADS, channels: int = CHANNELS):
    """Inputs of one ViT-Adapter MSDeformAttn call ('injector' or 'extractor') at a square input ``size``
    (``heads`` x ``channels``: ViT-Adapter-S by default, see ``ARCH_SHAPES``). float16/bfloat16 values come
    with float32 locations and weights."""
    g = torch.Generator().manual_seed(seed)
    if call == 'injector':
        query_shapes, value_shapes = _levels(size, (16,)), _levels(size, (8, 16, 32))
    elif call == 'extractor':
        query_shapes, value_shapes = _levels(size, (8, 16, 32)), _levels(size, (16,))
    else:
        raise ValueError(f"make_inputs: call must be 'injector' or 'extractor', got {call!r}")
    shapes = torch.tensor(value_shapes, dtype=torch.long)
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    s, n_levels = int(sizes.sum()), len(value_shapes)
    ref = _reference_points(query_shapes)  # (Lq, 2)
    lq = ref.shape[0]
    value = torch.randn(batch, s, heads, channels, generator=g)
    # Offsets of a few pixels on each level (the module's init spreads points 1..P pixels along a direction).
    wh = torch.tensor([[w, h] for h, w in value_shapes], dtype=torch.float32)  # (L, 2) as (x, y) normalisers
    offsets = torch.randn(batch, lq, heads, n_levels, POINTS, 2, generator=g) * 2.0
    loc = ref[None, :, None, None, None, :] + offsets / wh[None, None, None, :, None, :]
    logits = torch.randn(batch, lq, heads, n_levels * POINTS, generator=g)
    weights = logits.softmax(-1).view(batch, lq, heads, n_levels, POINTS)
    out = [value.to(dtype), shapes, starts, loc, weights.to(dtype if dtype == torch.float64 else torch.float32)]
    if dtype == torch.float64:
        out[3] = out[3].double()
    return [t.to(device) for t in out]


def floor_bytes(inputs) -> tuple[int, int]:
    """(forward, forward+backward) bytes if each tensor crossed DRAM once per pass."""
    value, _, _, loc, weights = inputs
    n, _, m, d = value.shape
    out = n * loc.shape[1] * m * d * value.element_size()
    vb, lb, wb = value.numel() * value.element_size(), loc.numel() * loc.element_size(), \
        weights.numel() * weights.element_size()
    fwd = vb + lb + wb + out
    bwd = out + vb + lb + wb + vb + lb + wb  # grad_out, inputs read; three gradients written
    return fwd, fwd + bwd


def copy_bandwidth(device: str, mib: int = 256, repeats: int = 7) -> float:
    """Bytes/s of a large tensor copy (read + write counted)."""
    src = torch.empty(mib * 2 ** 20 // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = _time(lambda: dst.copy_(src), device, repeats)
    return 2 * src.numel() * 4 / statistics.median(times)


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _time(fn, device: str, repeats: int, warmup: int = 1, min_total_s: float = 0.5) -> list[float]:
    """Wall times of ``repeats`` calls, or more (up to 50) for fast calls so they span ``min_total_s``."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    first = (time.perf_counter() - t0) / max(warmup, 1)
    repeats = max(repeats, min(50, int(min_total_s / max(first, 1e-6))))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def _calls(inputs, backend: str, device: str):
    """The two timed calls of one backend: forward (no autograd) and forward+backward."""
    value, shapes, starts, loc, weights = inputs

    def fwd():
        with torch.no_grad():
            ms_deform_attn(value, shapes, starts, loc, weights, backend=backend)

    v, l_, w = (t.detach().requires_grad_() for t in (value, loc, weights))
    grad = torch.randn(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3], device=device).to(value.dtype)

    def fwd_bwd():
        out = ms_deform_attn(v, shapes, starts, l_, w, backend=backend)
        torch.autograd.grad(out, (v, l_, w), grad)

    return fwd, fwd_bwd


def _timed(fn, device: str) -> float:
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def bench_shape(inputs, backends: list[str], device: str, rounds: int,
                round_s: float = 0.1, max_per_round: int = 10) -> dict[str, tuple[float, float, float, float]]:
    """Time every backend on one input, interleaved; returns {backend: (median fwd, median fwd+bwd, min fwd,
    min fwd+bwd)} in seconds.

    The backends take turns: each of ``rounds`` rounds runs every backend's forward, then every backend's
    forward+backward, so a slow spell on the machine hits the reference and the kernels alike and the
    ratios stay fair. Fast calls are repeated within a round (up to ``max_per_round`` times, to span
    about ``round_s``); medians and minima are over all calls.
    """
    calls = {b: _calls(inputs, b, device) for b in backends}
    reps = {}
    for b, fns in calls.items():
        for kind, fn in enumerate(fns):
            fn()  # warm-up (builds, caches, allocator)
            reps[b, kind] = max(1, min(max_per_round, int(round_s / max(_timed(fn, device), 1e-6))))
    times = {key: [] for key in reps}
    for _ in range(rounds):
        for kind in (0, 1):
            for b, fns in calls.items():
                times[b, kind] += [_timed(fns[kind], device) for _ in range(reps[b, kind])]
    return {b: (statistics.median(times[b, 0]), statistics.median(times[b, 1]), min(times[b, 0]),
                min(times[b, 1])) for b in backends}


def available_backends(device: str) -> list[str]:
    """The backends timed on ``device``: the reference, the compiled kernel of the device and, on a GPU, the Triton
    kernels (not on the CPU, where they would run in Triton's interpreter)."""
    names = ['reference']
    kernel = 'cuda' if device.startswith('cuda') else 'cpu'
    try:
        functions.current_backend(device, torch.float32, kernel)
        names.append(kernel)
    except RuntimeError as exc:
        print(f'# {kernel} backend unavailable: {exc}')
    if device.startswith('cuda'):
        try:
            functions.current_backend(device, torch.float32, 'triton')
            names.append('triton')
        except (RuntimeError, ValueError) as exc:
            print(f'# triton backend unavailable: {exc}')
    return names


def run(device: str = 'cpu', sizes=(512, 1024), batches=(1, 2), repeats: int = 5, threads: int = 2,
        calls=('injector', 'extractor'), out_dir: Path | None = RESULTS_DIR,
        readme: bool = False, archs=('S',), dtypes=('float32',), tag: str = '') -> list[dict]:
    """Run the benchmark; returns one row per (arch, dtype, call, size, batch, backend) and writes the tables.

    ``archs``: ViT-Adapter sizes whose (heads, channels) to use (``ARCH_SHAPES``); ``dtypes``: value dtypes
    ('float32', 'bfloat16', 'float16'; locations and weights stay float32). ``tag`` is appended to the saved
    file names. With ``readme=True`` (and ``out_dir``) the saved markdown table also replaces the one in
    ops/README.md.
    """
    torch.set_num_threads(threads)
    load_before = os.getloadavg()[0]
    backends = available_backends(device)
    bw = copy_bandwidth(device)
    rows = []
    for arch, dtype_name, size, batch, call in [(a, t, z, b, c) for a in archs for t in dtypes for z in sizes
                                                for b in batches for c in calls]:
                heads, channels = ARCH_SHAPES[arch]
                inputs = make_inputs(call, size, batch, device, DTYPES[dtype_name], heads=heads, channels=channels)
                fb, fbb = floor_bytes(inputs)
                results = bench_shape(inputs, backends, device, repeats)
                ref_times = results['reference'][:2]
                for backend in backends:
                    t_f, t_fb, min_f, min_fb = results[backend]
                    row = dict(call=call, input=size, batch=batch, backend=backend, arch=arch, dtype=dtype_name,
                               lq=inputs[3].shape[1], s=inputs[0].shape[1],
                               fwd_ms=t_f * 1e3, fwd_bwd_ms=t_fb * 1e3,
                               fwd_min_ms=min_f * 1e3, fwd_bwd_min_ms=min_fb * 1e3,
                               fwd_speedup=ref_times[0] / t_f, fwd_bwd_speedup=ref_times[1] / t_fb,
                               fwd_floor_ms=fb / bw * 1e3, fwd_bwd_floor_ms=fbb / bw * 1e3,
                               fwd_x_floor=t_f / (fb / bw), fwd_bwd_x_floor=t_fb / (fbb / bw),
                               fwd_gbps=fb / t_f / 1e9, fwd_bwd_gbps=fbb / t_fb / 1e9)
                    rows.append(row)
                    print(_fmt_row(row), flush=True)
    header = _header(device, threads, bw, repeats) + (
        f' Load average (1 min) {load_before:.1f} before, {os.getloadavg()[0]:.1f} after the run '
        f'({os.cpu_count()} CPUs; other jobs sharing the cores slow every row).')
    if out_dir is not None:
        md = _save(rows, header, device, out_dir, tag)
        if readme:
            update_readme(md, device.split(':')[0])
    return rows


_COLS = ['call', 'input', 'batch', 'backend', 'fwd_ms', 'fwd_speedup', 'fwd_x_floor', 'fwd_bwd_ms',
         'fwd_bwd_speedup', 'fwd_bwd_x_floor', 'fwd_gbps', 'fwd_bwd_gbps']


def _fmt_row(r: dict) -> str:
    return (f"| {r['call']} | {r['input']} | {r['batch']} | {r['backend']} | {r.get('arch', 'S')} | "
            f"{r.get('dtype', 'float32')} | {r['fwd_ms']:.2f} ({r['fwd_min_ms']:.2f}) | "
            f"{r['fwd_speedup']:.1f}x | {r['fwd_x_floor']:.1f} | {r['fwd_bwd_ms']:.2f} ({r['fwd_bwd_min_ms']:.2f}) | "
            f"{r['fwd_bwd_speedup']:.1f}x | {r['fwd_bwd_x_floor']:.1f} | {r['fwd_gbps']:.1f} | "
            f"{r['fwd_bwd_gbps']:.1f} |")


def _header(device: str, threads: int, bw: float, repeats: int) -> str:
    name = torch.cuda.get_device_name() if device.startswith('cuda') else (platform.processor() or platform.machine())
    return (f'ms_deform_attn benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, torch '
            f'{torch.__version__}, device {device} ({name}), {threads} threads, backends interleaved: {repeats} rounds, each round times every backend in turn (fast calls repeated within a round to span 0.1 s, at most 10 times); medians over all calls; '
            f'measured copy bandwidth {bw / 1e9:.1f} GB/s (256 MiB copy, read+write). '
            f'Times: median (min). Ratios use medians. Floor = bytes if every tensor crosses DRAM once per '
            f'pass / copy bandwidth. Allocator: {allocator.describe()}.')


def _save(rows: list[dict], header: str, device: str, out_dir: Path, tag: str = '') -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%S')
    base = out_dir / f"{device.split(':')[0]}_{stamp}{tag}"
    with open(f'{base}.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [header, '',
             TABLE_HEAD, '|' + '---|' * 14]
    lines += [_fmt_row(r) for r in rows]
    Path(f'{base}.md').write_text('\n'.join(lines) + '\n')
    print(f'saved {base}.md and {base}.csv')
    return Path(f'{base}.md')


README = Path(__file__).resolve().parent / 'README.md'
TABLE_HEAD = ('| call | input | batch | backend | arch | dtype | fwd ms (min) | fwd vs ref | fwd x floor | '
              'fwd+bwd ms (min) | fwd+bwd vs ref | fwd+bwd x floor | fwd GB/s | fwd+bwd GB/s |')


def update_readme(md_path: Path, device: str, readme: Path = README) -> None:
    """Replace the table between ``<!-- bench:<device>:start -->`` and ``<!-- bench:<device>:end -->``."""
    start, end = f'<!-- bench:{device}:start -->', f'<!-- bench:{device}:end -->'
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f'update_readme: markers {start} / {end} not found in {readme}')
    body = md_path.read_text().strip()
    rel = md_path.relative_to(readme.parent)
    text = text[:text.index(start) + len(start)] + f'\n(from `{rel}`)\n\n{body}\n' + text[text.index(end):]
    readme.write_text(text)
    print(f'updated {readme}')


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--sizes', type=int, nargs='+', default=[512, 1024])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--calls', nargs='+', default=['injector', 'extractor'])
    parser.add_argument('--repeats', type=int, default=5,
                        help='rounds per shape; every round times each backend in turn')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--archs', nargs='+', default=['S'], choices=sorted(ARCH_SHAPES),
                        help='ViT-Adapter sizes whose deformable heads x channels to use (default S: 6 x 64)')
    parser.add_argument('--dtypes', nargs='+', default=['float32'], choices=sorted(DTYPES),
                        help='value dtypes (locations and weights stay float32)')
    parser.add_argument('--no-save', action='store_true')
    parser.add_argument('--readme', action='store_true', help='also put the table into ops/README.md')
    parser.add_argument('--malloc', choices=['tuned', 'default'], default='tuned',
                        help='tuned (default): ops.allocator.tune_glibc_malloc(), so large outputs reuse memory '
                             'instead of page-faulting fresh mmap regions; default: glibc as it comes')
    args = parser.parse_args(argv)
    if args.malloc == 'tuned':
        allocator.tune_glibc_malloc()
    print(TABLE_HEAD)
    run(args.device, tuple(args.sizes), tuple(args.batches), args.repeats, args.threads, tuple(args.calls),
        None if args.no_save else RESULTS_DIR, readme=args.readme, archs=tuple(args.archs),
        dtypes=tuple(args.dtypes))


if __name__ == '__main__':
    main()
