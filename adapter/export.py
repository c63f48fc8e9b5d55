"""``python -m adapter.export`` (``make export``): the backbone through ``torch.export`` and to ONNX.

Two artefacts, each checked against the eager model on the same input:

- ``.pt2`` (``torch.export``): the graph keeps the registered op ``vit_adapter::ms_deform_attn`` (traced through its
  fake kernel); loading it needs ``import ops`` (registers the op; the CPU/CUDA kernel builds on first use).
- ``.onnx`` (``torch.onnx.export(dynamo=True)``, opset 18): inside ``ops.grid_sample_form(model)`` every
  ``MSDeformAttn`` computes the op as standard ops (``ops.ms_deform_attn_grid_sample``: one ``F.grid_sample`` per
  level, bilinear, zeros padding, align_corners=False, and a weighted sum), so the graph holds ONNX ``GridSample``
  and no custom op; ONNX Runtime runs it as is.

Both export the model in eval mode after ``fuse_for_inference()`` (SPM BatchNorms folded into their convs, the
2x2 upsampling as a transposed conv), under ``torch.no_grad()``. The input size is static (level shapes, window
padding and the position-embedding resize are Python ints at trace time); ``--dynamic-batch`` makes the batch
dimension dynamic. Why the dynamo exporter, the tolerance of the check and what TensorRT needs: adapter/README.md
"Export".

Usage:
    python -m adapter.export [--arch S] [--size H W] [--window-attn] [--window-size 14] [--weights W.pth]
                             [--out exports] [--format all|pt2|onnx] [--batch 1] [--dynamic-batch]
                             [--opset 18] [--rtol 1e-4] [--no-verify]

Exit status: 0 exported (and verified), 1 the export or the check failed, 2 bad arguments.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ops import grid_sample_form

from .contract import SIZE_DIVISOR
from .presets import PRESETS

MIN_OPSET = 18   # the dynamo exporter's own opset; 17 fails to down-convert Pad (and GridSample needs >= 16)
RTOL = 1e-4      # max |ONNX Runtime - eager| / max |eager| per output level (float32; see adapter/README.md)
OUTPUT_NAMES = ('p2', 'p3', 'p4', 'p5')


def prepare(model: nn.Module) -> nn.Module:
    """Eval mode with the inference rewrites on (``fuse_for_inference``); returns the model."""
    model.eval()
    if hasattr(model, 'fuse_for_inference'):
        model.fuse_for_inference()
    return model


def _batch_dims(dynamic_batch: bool):
    return {'x': {0: torch.export.Dim('batch', min=1, max=1024)}} if dynamic_batch else None


def export_program(model: nn.Module, x: torch.Tensor, dynamic_batch: bool = False) -> torch.export.ExportedProgram:
    """``torch.export.export`` of the prepared ``model`` at ``x``'s size; the deformable attention stays the
    registered op (its fake kernel gives the output shape)."""
    with torch.no_grad():
        return torch.export.export(prepare(model), (x,), dynamic_shapes=_batch_dims(dynamic_batch))


def export_onnx(model: nn.Module, x: torch.Tensor, path: Optional[str] = None, opset: int = MIN_OPSET,
                dynamic_batch: bool = False, optimize: bool = True):
    """ONNX program of the prepared ``model`` with the deformable attention as GridSample (dynamo exporter).

    Args:
        model: a ``ViTAdapter`` / ``ViTBaseline`` (any module; its ``MSDeformAttn`` are switched for the export only).
        x: example input (B, 3, H, W); H and W fix the exported size.
        path: where to save the ``.onnx`` (weights inside the file), or None to only return the program.
        opset: ONNX opset, >= 18.
        dynamic_batch: export the batch dimension as dynamic ('batch').
        optimize: run the ONNX optimizer (constant folding; without it the graph keeps sequence ops).

    Returns:
        ``torch.onnx.ONNXProgram``.
    """
    if opset < MIN_OPSET:
        raise ValueError(f'opset {opset} < {MIN_OPSET}: the dynamo exporter writes opset {MIN_OPSET} and cannot '
                         f'convert this graph down (Pad)')
    prepare(model)
    with torch.no_grad(), grid_sample_form(model), warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='.*LeafSpec.*', category=FutureWarning)  # torch-internal
        program = torch.onnx.export(model, (x,), dynamo=True, opset_version=opset, optimize=optimize,
                                    input_names=['image'], output_names=list(OUTPUT_NAMES),
                                    dynamic_shapes=_batch_dims(dynamic_batch), verbose=False)
    if path is not None:
        program.save(path, external_data=False)
    return program


def run_onnx(model_path_or_bytes, x: torch.Tensor) -> List[np.ndarray]:
    """Outputs of ONNX Runtime (CPU provider) on ``x``."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_path_or_bytes, opts, providers=['CPUExecutionProvider'])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})


def compare(reference: Sequence[torch.Tensor], outputs: Sequence) -> List[Dict[str, float]]:
    """Per output level: max |out - ref|, max |ref| and their ratio (``rel``); shapes must agree."""
    rows = []
    for ref, out in zip(reference, outputs, strict=True):
        ref = ref.detach().double().numpy()
        out = out.detach().double().numpy() if isinstance(out, torch.Tensor) else np.asarray(out, np.float64)
        if ref.shape != out.shape:
            raise ValueError(f'output shape {out.shape} differs from eager {ref.shape}')
        abs_err = float(np.abs(out - ref).max()) if ref.size else 0.0
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        rows.append(dict(max_abs=abs_err, scale=scale, rel=abs_err / scale if scale else abs_err))
    return rows


def _load_weights(model: nn.Module, path: str) -> None:
    """Strictly load a state dict of this suite's backbone (bare keys, 'backbone.'-prefixed, or under
    'state_dict' / 'model' as training checkpoints keep it)."""
    ckpt = torch.load(path, map_location='cpu', weights_only=True)
    sd = ckpt.get('state_dict', ckpt.get('model', ckpt)) if isinstance(ckpt, dict) else ckpt
    if not isinstance(sd, dict):
        raise ValueError(f'{path} holds no state dict')
    if any(k.startswith('backbone.') for k in sd):
        sd = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    model.load_state_dict(sd, strict=True)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog='python -m adapter.export',
                                 description='Export a ViT-Adapter backbone with torch.export (.pt2) and to ONNX '
                                             '(deformable attention as GridSample), checked against eager. '
                                             'Exit 0: done; 1: export or check failed; 2: bad arguments.')
    ap.add_argument('--arch', default='S', choices=sorted(PRESETS), help='preset (default S)')
    ap.add_argument('--size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'),
                    help=f'input height and width, multiples of {SIZE_DIVISOR} (default 512 512)')
    ap.add_argument('--window-attn', action='store_true',
                    help='window attention in all ViT blocks but the last of each quarter (the detection configs)')
    ap.add_argument('--window-size', type=int, default=14, help='window side in tokens (default 14)')
    ap.add_argument('--weights', help="the backbone's state dict (this suite's keys); default: random init")
    ap.add_argument('--out', default='exports', help='output folder (default exports/)')
    ap.add_argument('--format', default='all', choices=['all', 'pt2', 'onnx'])
    ap.add_argument('--batch', type=int, default=1, help='batch of the example input (default 1)')
    ap.add_argument('--dynamic-batch', action='store_true',
                    help='export the batch dimension as dynamic (traced at batch >= 2; checked at a second batch)')
    ap.add_argument('--opset', type=int, default=MIN_OPSET, help=f'ONNX opset, >= {MIN_OPSET} (default)')
    ap.add_argument('--rtol', type=float, default=RTOL,
                    help=f'allowed max|ONNX Runtime - eager| / max|eager| per level (default {RTOL})')
    ap.add_argument('--no-verify', action='store_true', help='skip running the exported models')
    return ap


def _check_args(ap: argparse.ArgumentParser, args) -> None:
    h, w = args.size
    if h <= 0 or w <= 0 or h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        ap.error(f'--size {h} {w}: both sides must be positive multiples of {SIZE_DIVISOR}')
    if args.batch < 1:
        ap.error(f'--batch {args.batch}: must be >= 1')
    if args.window_size < 1:
        ap.error(f'--window-size {args.window_size}: must be >= 1')
    if args.opset < MIN_OPSET:
        ap.error(f'--opset {args.opset}: must be >= {MIN_OPSET} (the dynamo exporter cannot convert down: Pad)')
    if not args.rtol > 0:
        ap.error(f'--rtol {args.rtol}: must be > 0')
    if args.weights and not os.path.isfile(args.weights):
        ap.error(f'--weights {args.weights}: no such file')


def _report(what: str, rows: List[Dict[str, float]], rtol: Optional[float]) -> bool:
    ok = rtol is None or all(r['rel'] <= rtol for r in rows)
    cells = ', '.join(f"{n} {r['max_abs']:.2e} ({r['rel']:.1e})" for n, r in zip(OUTPUT_NAMES, rows))
    limit = '' if rtol is None else f"; limit {rtol:.0e} relative: {'ok' if ok else 'FAILED'}"
    print(f'check {what} vs eager, max abs (relative to max |eager|): {cells}{limit}')
    return ok


def main(argv: Optional[List[str]] = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    _check_args(ap, args)
    from .backbone import ViTAdapter
    h, w = args.size
    model = ViTAdapter(args.arch, window_attn=args.window_attn, window_size=args.window_size)
    try:
        if args.weights:
            _load_weights(model, args.weights)
    except (RuntimeError, ValueError, OSError, KeyError) as err:
        print(f'error: cannot load --weights {args.weights}: {err}', file=sys.stderr)
        return 1
    prepare(model)
    # a dynamic dimension is traced at size >= 2 (torch.export specialises sizes 0 and 1)
    batch = max(args.batch, 2) if args.dynamic_batch else args.batch
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        eager = model(x)
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f'vit_adapter_{args.arch}_{h}x{w}' + ('_win' if args.window_attn else ''))
    ok = True
    try:
        if args.format in ('all', 'pt2'):
            ep = export_program(model, x, args.dynamic_batch)
            torch.export.save(ep, stem + '.pt2')
            print(f'wrote {stem}.pt2 (torch.export; needs `import ops` to load)')
            if not args.no_verify:
                with torch.no_grad():
                    ok &= _report('torch.export', compare(eager, ep.module()(x)), 0.0)
        if args.format in ('all', 'onnx'):
            export_onnx(model, x, stem + '.onnx', args.opset, args.dynamic_batch)
            print(f'wrote {stem}.onnx (opset {args.opset}, deformable attention as GridSample)')
            if not args.no_verify:
                ok &= _report('ONNX Runtime', compare(eager, run_onnx(stem + '.onnx', x)), args.rtol)
                if args.dynamic_batch:
                    x2 = torch.randn(1 if batch > 1 else 3, 3, h, w, generator=torch.Generator().manual_seed(1))
                    with torch.no_grad():
                        ok &= _report(f'ONNX Runtime at batch {x2.shape[0]}',
                                      compare(model(x2), run_onnx(stem + '.onnx', x2)), args.rtol)
    except Exception as err:  # an exporter failure: one line, not a traceback (set EXPORT_DEBUG=1 for it)
        if os.environ.get('EXPORT_DEBUG'):
            raise
        print(f'error: export failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}',
              file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
