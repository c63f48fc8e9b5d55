"""``python -m adapter.launches`` (``make bench-launches``): ATen calls per training step, plain ViT vs ViT-Adapter.

On a GPU the adapter is launch-bound (``../shared/notes/gpu_measured.md``: ViT-Adapter-S at 1024 keeps the GPU
idle 40% of a step, about 1,600 copy/cast calls per step). The number of ATen calls a step makes does not depend
on the device, so it is counted here on any device: one forward+backward (sum of the outputs) in train mode under
bf16 autocast, through a ``TorchDispatchMode`` that sees every ATen call below autograd.

Columns:
    calls: every ATen call, views included (what the host dispatches);
    compute: calls that launch work on the device: not views (``OpOverload.is_view``), not metadata-only ops and
        not bare allocations (``empty*``);
    casts: ``_to_copy`` / ``copy_`` (autocast's casts of weights, biases and activations, and their backward).
The ratio adapter/ViT of compute calls is printed beside the FLOP ratio (``adapter.flops``): a backbone whose
launch ratio is far above its FLOP ratio spends the difference waiting for the host on a GPU. Counts depend on the
input size only through window padding; the default is small so that L counts on a laptop CPU.

Usage:
    python -m adapter.launches [--archs T S B L] [--size 256] [--batch 2] [--device cpu|cuda]
                               [--dtype bfloat16|float16|float32] [--top 12] [--save]
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path
from typing import Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

RESULTS_DIR = Path(__file__).resolve().parent / 'bench_results'
DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16, 'float32': torch.float32}
# no device work: metadata-only ops that the schema does not mark as views, and bare allocations
_NO_WORK = {'_unsafe_view', 'detach', 'lift_fresh', 'empty', 'new_empty', 'empty_like', 'empty_strided',
            'new_empty_strided', '_reshape_alias', 'set_', 'resize_', 'sym_size', 'sym_stride', 'sym_numel'}
_CASTS = {'_to_copy', 'copy_'}


class CallCounter(TorchDispatchMode):
    """Counts ATen calls by overload packet name (``calls``), and which of them do device work."""

    def __init__(self):
        super().__init__()
        self.calls: collections.Counter = collections.Counter()
        self.compute: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        self.calls[name] += 1
        if not (getattr(func, 'is_view', False) or name in _NO_WORK):
            self.compute[name] += 1
        return func(*args, **(kwargs or {}))

    def summary(self) -> Dict[str, int]:
        return dict(calls=sum(self.calls.values()), compute=sum(self.compute.values()),
                    casts=sum(v for k, v in self.calls.items() if k in _CASTS))


def count_step(model: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype = torch.bfloat16,
               backward: bool = True) -> CallCounter:
    """ATen calls of one train-mode forward (+ backward of the sum of the outputs) of ``model`` on ``x`` under
    autocast to ``dtype`` (float32: no autocast), after one uncounted warm-up step (lazy caches filled)."""
    model.train()
    dev = x.device.type

    def step():
        with torch.autocast(dev, dtype=dtype, enabled=dtype != torch.float32):
            out = model(x)
        outs = out if isinstance(out, (list, tuple)) else [out]
        if backward:
            sum(o.float().sum() for o in outs).backward()
        model.zero_grad(set_to_none=True)

    step()
    counter = CallCounter()
    with counter:
        step()
    return counter


def measure(arch: str, size: int = 256, batch: int = 2, device: str = 'cpu', dtype: str = 'bfloat16',
            seed: int = 0) -> dict:
    """Counts for the plain ViT trunk and ViT-Adapter of ``arch``, with the FLOP ratio at ``size``."""
    from .bench_device import build, flop_ratio
    torch.manual_seed(seed)
    dev = torch.device(device)
    row = dict(arch=arch, size=size, batch=batch, device=device, dtype=dtype)
    models = {}
    for kind in ('vit', 'adapter'):
        models[kind] = model = build(kind, arch).to(dev)
        x = torch.randn(batch, 3, size, size, device=dev)
        counter = count_step(model, x, DTYPES[dtype])
        row[kind] = counter.summary()
        row[kind + '_top'] = counter.compute.most_common()
    gmacs_vit, gmacs_adapter = flop_ratio(arch, size, dev, models)
    row['flop_ratio'] = gmacs_adapter / gmacs_vit
    row['compute_ratio'] = row['adapter']['compute'] / row['vit']['compute']
    return row


HEAD = ('| arch | compute calls ViT / adapter (ratio) | all calls ViT / adapter | casts ViT / adapter '
        '| FLOP ratio | compute ratio / FLOP ratio |\n|---|---|---|---|---|---|')


def fmt_row(r: dict) -> str:
    v, a = r['vit'], r['adapter']
    return (f"| {r['arch']} | {v['compute']} / {a['compute']} ({r['compute_ratio']:.2f}x) | {v['calls']} / "
            f"{a['calls']} | {v['casts']} / {a['casts']} | {r['flop_ratio']:.2f} | "
            f"{r['compute_ratio'] / r['flop_ratio']:.2f} |")


def fmt_top(r: dict, top: int) -> str:
    vit = dict(r['vit_top'])
    lines = [f"Top compute calls of ViT-Adapter-{r['arch']} (ViT beside):", '',
             '| op | adapter | ViT |', '|---|---|---|']
    lines += [f'| {name} | {n} | {vit.get(name, 0)} |' for name, n in r['adapter_top'][:top]]
    return '\n'.join(lines)


def run(archs=('T', 'S', 'B', 'L'), size: int = 256, batch: int = 2, device: str = 'cpu', dtype: str = 'bfloat16',
        top: int = 12, save: bool = False, out=None) -> list:
    out = out or sys.stdout
    stamp = time.strftime('%Y%m%dT%H%M%S')
    head = (f'# ATen calls per training step (forward + backward), {device}, {dtype} autocast, batch {batch}, '
            f'{size}x{size}, torch {torch.__version__}\n\n{HEAD}')
    print(head, file=out, flush=True)
    rows, lines = [], [head]
    for arch in archs:
        r = measure(arch, size, batch, device, dtype)
        rows.append(r)
        lines.append(fmt_row(r))
        print(lines[-1], file=out, flush=True)
    if top and rows:
        text = '\n' + fmt_top(rows[min(1, len(rows) - 1)], top)
        print(text, file=out)
        lines.append(text)
    if save:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f'launches_{device}_{stamp}.md'
        path.write_text('\n'.join(lines) + '\n')
        print(f'saved {path}', file=out)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m adapter.launches', description=__doc__.split('\n\n')[0])
    p.add_argument('--archs', nargs='+', default=['T', 'S', 'B', 'L'], choices=['tiny', 'T', 'S', 'B', 'L'])
    p.add_argument('--size', type=int, default=256, help='image side, a multiple of 32 (default 256)')
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--dtype', default='bfloat16', choices=sorted(DTYPES))
    p.add_argument('--top', type=int, default=12, help='list the most frequent calls of the second arch')
    p.add_argument('--save', action='store_true', help='write the table under adapter/bench_results/')
    a = p.parse_args(argv)
    if a.size <= 0 or a.size % 32:
        p.error(f'--size {a.size}: must be a positive multiple of 32')
    if a.batch <= 0:
        p.error(f'--batch {a.batch}: must be positive')
    if a.device.startswith('cuda') and not torch.cuda.is_available():
        p.error(f'--device {a.device}: no CUDA device here (torch {torch.__version__})')
    run(a.archs, a.size, a.batch, a.device, a.dtype, a.top, a.save)
    return 0


if __name__ == '__main__':
    sys.exit(main())
