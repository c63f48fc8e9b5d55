"""``python -m adapter.summary``: parameters and FLOPs of every preset and ablation variant beside the paper.

Parameters: backbone, adapter alone (backbone minus its ViT), and full mmdet Mask R-CNN / mmseg UperNet /
Semantic FPN models (built through the registries with the shims, on the meta device: real modules, no
memory). FLOPs: multiply-accumulates (the convention of mmcv / fvcore "FLOPs") of a forward at a given input
size, counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convs, transposed convs, SDPA incl. the
CPU flash kernel; divided by 2) plus the deformable sampling, which it cannot see: 5 * D MACs per sampled point
(4 bilinear corners + the attention weight) per query, head, level and point. Norms, activations, softmax and
resizes are not counted. With this counter the Semantic FPN FLOPs of Table A4 are reproduced exactly.

mmdet / mmseg / mmengine are imported lazily inside functions (the rest of ``adapter`` never imports them).

Usage:
    python -m adapter.summary [--flops-size H W] [--no-flops]
"""
from __future__ import annotations

import argparse
import contextlib
import warnings
from typing import Dict, Optional

import torch
from torch import nn

from .attention import DeformableCrossAttention
from .backbone import ViTAdapter, build_backbone
from .mmconfigs import maskrcnn_config, semfpn_config, upernet_config

# Paper #Param (M): Table 1 (Mask R-CNN), Table 4 (ADE20K), Tables 8-10 (ablations, ViT-Adapter-S Mask R-CNN).
# Rows: name -> (backbone kwargs, {model: paper value}); None where the paper gives no number.
ROWS = {
    'ViT-T':                 (dict(type='ViTBaseline', arch='T'), dict(maskrcnn=26.1, upernet=34.1, semfpn=10.2)),
    'ViT-Adapter-T':         (dict(type='ViTAdapter', arch='T'), dict(maskrcnn=28.1, upernet=36.1, semfpn=12.2)),
    'ViT-S (N=0)':           (dict(type='ViTBaseline', arch='S'), dict(maskrcnn=43.8, upernet=53.6, semfpn=27.8)),
    'ViT-Adapter-S (N=4)':   (dict(type='ViTAdapter', arch='S'), dict(maskrcnn=47.8, upernet=57.6, semfpn=31.9)),
    'ViT-B':                 (dict(type='ViTBaseline', arch='B'), dict(maskrcnn=None, upernet=127.3, semfpn=98.0)),
    'ViT-Adapter-B':         (dict(type='ViTAdapter', arch='B'), dict(maskrcnn=120.2, upernet=133.9, semfpn=104.6)),
    'ViT-L':                 (dict(type='ViTBaseline', arch='L'), dict(maskrcnn=337.3, upernet=None, semfpn=None)),
    'ViT-Adapter-L':         (dict(type='ViTAdapter', arch='L'), dict(maskrcnn=347.9, upernet=363.8, semfpn=332.0)),
    'S spm_add (var. 1)':    (dict(type='ViTAdapter', arch='S', variant='spm_add'), dict(maskrcnn=None)),
    'S spm_injector (var. 2)': (dict(type='ViTAdapter', arch='S', variant='spm_injector'), dict(maskrcnn=46.6)),
    'S N=1':                 (dict(type='ViTAdapter', arch='S', n_interactions=1), dict(maskrcnn=45.5)),
    'S N=2':                 (dict(type='ViTAdapter', arch='S', n_interactions=2), dict(maskrcnn=46.2)),
    'S N=6':                 (dict(type='ViTAdapter', arch='S', n_interactions=6), dict(maskrcnn=49.4)),
    'S global':              (dict(type='ViTAdapter', arch='S', attn_type='global'), dict(maskrcnn=50.3)),
    'S cswin':               (dict(type='ViTAdapter', arch='S', attn_type='cswin'), dict(maskrcnn=50.3)),
    'S pale':                (dict(type='ViTAdapter', arch='S', attn_type='pale'), dict(maskrcnn=50.3)),
}
# Table 4 / the official ADE20K configs: the B segmentors hold a 24x24 (384 px) position embedding; with it every
# B UperNet / SemFPN count matches (+0.29M), with 224 none does. Detection B uses 224.
SEG_OVERRIDES = {'B': dict(pretrain_size=384)}


def _mm(task: str):
    """(registry, scope) for 'det' / 'seg', importing the shims (and registering all mm modules)."""
    if task == 'det':
        import experiments.shims.mmdet_adapter  # noqa: F401
        from mmdet.registry import MODELS
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        return MODELS, 'mmdet'
    if task == 'seg':
        import experiments.shims.mmseg_adapter  # noqa: F401
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
        return MODELS, 'mmseg'
    raise ValueError(f"task must be 'det' or 'seg', got {task!r}")


def build_mm_model(task: str, cfg: dict, device: str = 'cpu') -> nn.Module:
    """Build a real mmdet ('det') or mmseg ('seg') model from a plain dict (see ``adapter.mmconfigs``).

    ``device='meta'`` builds without allocating memory (for counting parameters of large models).
    """
    registry, scope = _mm(task)
    from mmengine.config import ConfigDict
    from mmengine.registry import DefaultScope
    ctx = torch.device(device) if device == 'meta' else contextlib.nullcontext()
    with ctx, DefaultScope.overwrite_default_scope(scope), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return registry.build(ConfigDict(cfg))


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def param_counts(backbone: dict, seg_overrides: Optional[dict] = None) -> Dict[str, float]:
    """Millions of parameters: backbone, adapter (backbone minus ViT), maskrcnn, upernet, semfpn."""
    with torch.device('meta'):
        bb = build_backbone(backbone)
    seg_bb = dict(backbone, **(seg_overrides or {}))
    return dict(backbone=count(bb) / 1e6, adapter=(count(bb) - count(bb.vit)) / 1e6,
                maskrcnn=count(build_mm_model('det', maskrcnn_config(backbone), 'meta')) / 1e6,
                upernet=count(build_mm_model('seg', upernet_config(seg_bb), 'meta')) / 1e6,
                semfpn=count(build_mm_model('seg', semfpn_config(seg_bb), 'meta')) / 1e6)


def backbone_flops(model: nn.Module, size=(512, 512), call=None) -> Dict[str, float]:
    """GMACs of one forward of ``model`` on a (1, 3, H, W) input: dense ops + deformable sampling.

    ``call(model, x)`` overrides how the model is run (e.g. an mmseg model in 'tensor' mode).
    """
    from torch.utils.flop_counter import FlopCounterMode

    def sdpa(q, k, v, *_, out_shape=None, **__):  # torch counts SDPA only for its CUDA kernels
        b, h, sq, d = q
        return 2 * b * h * sq * k[-2] * (d + v[-1])
    cpu_sdpa = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: sdpa}
    sampling = [0]

    def hook(mod: DeformableCrossAttention, args, _out):
        query = args[0]
        d = int(mod.d_model * mod.ratio) // mod.n_heads
        sampling[0] += query.shape[0] * query.shape[1] * mod.n_heads * mod.n_levels * mod.n_points * 5 * d
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, DeformableCrossAttention)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=cpu_sdpa) as fc:
            x = torch.zeros(1, 3, *size)
            model.eval()
            call(model, x) if call is not None else model(x)
    finally:
        for h in handles:
            h.remove()
    dense = fc.get_total_flops() / 2
    return dict(dense=dense / 1e9, sampling=sampling[0] / 1e9, total=(dense + sampling[0]) / 1e9)


def _fmt(x: Optional[float]) -> str:
    return '-' if x is None else f'{x:.1f}'


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--flops-size', type=int, nargs=2, default=(512, 512), metavar=('H', 'W'),
                    help='input size for backbone FLOPs (multiples of 32)')
    ap.add_argument('--no-flops', action='store_true', help='skip the FLOP count (it runs a forward per row)')
    args = ap.parse_args(argv)
    print('Parameters in M (ours / paper); FLOPs = backbone GMACs at %dx%d (dense + deformable sampling).'
          % tuple(args.flops_size))
    print('| model | backbone | adapter | Mask R-CNN | UperNet | SemFPN | GFLOPs (dense+sampling) |')
    print('|---|---|---|---|---|---|---|')
    for name, (bb, paper) in ROWS.items():
        arch = bb.get('arch', 'S')
        c = param_counts(bb, SEG_OVERRIDES.get(arch))
        cells = [f"{c[k]:.2f} / {_fmt(paper.get(k))}" for k in ('maskrcnn', 'upernet', 'semfpn')]
        fl = '-'
        if not args.no_flops:
            f = backbone_flops(build_backbone(bb), tuple(args.flops_size))
            fl = f"{f['total']:.1f} ({f['dense']:.1f}+{f['sampling']:.2f})"
        print(f"| {name} | {c['backbone']:.2f} | {c['adapter']:.2f} | " + ' | '.join(cells) + f' | {fl} |')
    if args.no_flops:
        return
    # Table 10: the detector heads are the same for every attention type, so the paper's FLOP differences to
    # the deformable model are backbone differences. At 1280x800 the global-attention increase matches the
    # paper's (+676G vs +677G), so that is the size the paper's FLOPs were taken at.
    print('\nTable 10 (ViT-Adapter-S): backbone GMACs at 1280x800 and the difference to deformable, ours vs paper')
    print('| attention | GMACs | minus deformable (ours) | minus deformable (paper, Mask R-CNN FLOPs) |')
    print('|---|---|---|---|')
    paper = dict(deformable=403, global_=1080, cswin=456, pale=458)
    base = None
    for attn in ('deformable', 'global', 'cswin', 'pale'):
        f = backbone_flops(build_backbone(dict(type='ViTAdapter', arch='S', attn_type=attn)), (800, 1280))['total']
        base = f if base is None else base
        p = paper['global_' if attn == 'global' else attn]
        print(f'| {attn} | {f:.0f} | {f - base:+.0f} | {p - 403:+d} (paper total {p}G) |')
    # Table A4: full Semantic FPN at 512x512 through mmseg (backbone + FPN + FPNHead).
    print('\nTable A4: Semantic FPN GMACs at 512x512 (full mmseg model, 150 classes), ours vs paper')
    print('| model | ours | paper |')
    print('|---|---|---|')
    for name, bb, p in (('ViT-B', dict(type='ViTBaseline', arch='B', pretrain_size=384), 147),
                        ('ViT-Adapter-B', dict(type='ViTAdapter', arch='B', pretrain_size=384), 183),
                        ('ViT-L', dict(type='ViTBaseline', arch='L'), 414),
                        ('ViT-Adapter-L', dict(type='ViTAdapter', arch='L'), 473)):
        model = build_mm_model('seg', semfpn_config(bb))
        f = backbone_flops(model, (512, 512), call=lambda m, x: m(x, mode='tensor'))['total']
        print(f'| {name} | {f:.0f} | {p} |')


if __name__ == '__main__':
    main()
