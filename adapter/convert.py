"""``python -m adapter.convert IN.pth OUT.pth``: official ViT-Adapter checkpoint -> this suite's names.

Input: an mmdet 2.x / mmseg 0.x checkpoint of the official code (czczup/ViT-Adapter): ``state_dict`` with
``backbone.*`` (spm, level_embed, interactions.i.{injector, extractor, extra_extractors}, up, norm1..4,
blocks, patch_embed, pos_embed, cls_token; or the ViTBaseline's up1/up2/norm1..4), ``neck.*`` and heads.
Output: ``{'state_dict': ..., 'meta': {...}}`` loadable by mmdet 3.x / mmseg 1.x models built with the shims
(``backbone.vit.*`` for the ViT, ``backbone.norms.i`` for norm{i+1}, top-level ``backbone.extra_extractors``).
Heads and necks keep their names (mmdet / mmseg did not rename Mask R-CNN, FPN, UPerHead or FCNHead params).
The position embedding loses its class-token slot. Every key not matched by ``RULES`` is reported and dropped.

The official ``BEiTAdapter`` (segmentation, e.g. the Mask2Former BEiT-Adapter-L 896 checkpoints) converts too: its
BEiT ViT keeps the class token (``backbone.vit.cls_token``), q_bias / v_bias, gamma_1 / gamma_2, and each
``relative_position_bias_table`` ((2G-1)^2 + 3, heads) becomes ``rel_pos_table`` (heads, 2G-1, 2G-1) + ``rel_pos_cls``
(heads, 3); the ``relative_position_index`` buffers are dropped (recomputed from the grid). Build it with BEiT's
options (``check_kwargs``). Only the backbone: the official Mask2Former head (mmdet 2.x transformer layers) has no
renaming to mmdet 3.x's here.

All renames are in the one table ``RULES`` (first match wins).
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

from .checkpoint import read_checkpoint

Target = Union[str, None, Callable[[re.Match, bool], str]]

# (official key regex, suite key template | None to drop on purpose | callable(match, is_baseline) -> key)
RULES: List[Tuple[str, Target]] = [
    (r'backbone\.interactions\.\d+\.extra_extractors\.(\d+)\.(.+)', r'backbone.extra_extractors.\1.\2'),
    (r'backbone\.extra_extractors\.(\d+)\.(.+)', r'backbone.extra_extractors.\1.\2'),
    (r'backbone\.interactions\.(\d+)\.(injector|extractor)\.(.+)', r'backbone.interactions.\1.\2.\3'),
    (r'backbone\.spm\.(.+)', r'backbone.spm.\1'),
    (r'backbone\.level_embed', r'backbone.level_embed'),
    (r'backbone\.up\.(weight|bias)', r'backbone.up.\1'),
    (r'backbone\.up1\.(.+)', r'backbone.pyramid.up4.\1'),                   # ViTBaseline
    (r'backbone\.up2\.(.+)', r'backbone.pyramid.up8.\1'),                   # ViTBaseline
    (r'backbone\.norm([1-4])\.(.+)',
     lambda m, base: f'backbone.{"pyramid.norms" if base else "norms"}.{int(m[1]) - 1}.{m[2]}'),
    (r'backbone\.blocks\.(\d+)\.gamma_?1', r'backbone.vit.blocks.\1.ls1.gamma'),   # official layer scale
    (r'backbone\.blocks\.(\d+)\.gamma_?2', r'backbone.vit.blocks.\1.ls2.gamma'),
    (r'backbone\.blocks\.(\d+)\.attn\.relative_position_index', None),                # BEiTAdapter
    (r'backbone\.blocks\.(\d+)\.attn\.relative_position_bias_table',                  # split below
     r'backbone.vit.blocks.\1.attn.rel_pos_table'),
    (r'backbone\.blocks\.(\d+)\.(.+)', r'backbone.vit.blocks.\1.\2'),
    (r'backbone\.patch_embed\.(.+)', r'backbone.vit.patch_embed.\1'),
    (r'backbone\.pos_embed', r'backbone.vit.pos_embed'),                    # class-token slot removed below
    (r'backbone\.cls_token', None),
    (r'(neck|rpn_head|roi_head|bbox_head|mask_head|decode_head|auxiliary_head)\.(.+)', r'\1.\2'),
]


# Keys dropped on purpose, and why (printed by the CLI and stored in the converted checkpoint's meta).
DROP_REASONS = {
    'backbone.cls_token': 'the class token: the adapter backbone has none (the official forward never reads it)',
}
INDEX_REASON = 'a buffer: BEiT\'s relative position index, recomputed from the grid'


def drop_reason(key: str) -> str:
    """Why ``convert_official`` dropped ``key``."""
    if key.endswith('attn.relative_position_index'):
        return INDEX_REASON
    return DROP_REASONS.get(key, 'not used by this suite')


def is_beit(sd: Dict[str, torch.Tensor]) -> bool:
    """Whether a state dict (official or converted names) holds a BEiT ViT (q / v biases, per-block tables)."""
    return any(k.endswith(('attn.q_bias', 'attn.relative_position_bias_table', 'attn.rel_pos_table')) for k in sd)
POS_EMBED_NOTE = ("backbone.pos_embed: the class-token slot [:, 0] is dropped (the official forward reads "
                  "pos_embed[:, 1:] only)")


def _with_backbone_prefix(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Accept a bare backbone state dict (``spm.*``, ``blocks.*``, ...) and DDP's ``module.`` prefix."""
    if sd and all(k.startswith('module.') for k in sd):
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    if sd and not any(k.startswith('backbone.') for k in sd) and any(
            k.startswith(('blocks.', 'patch_embed.', 'spm.')) for k in sd):
        sd = {'backbone.' + k: v for k, v in sd.items()}
    return sd


def convert_official(sd: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
    """Rename an official state dict. Returns (converted, dropped on purpose (see ``DROP_REASONS``), unmatched)."""
    sd = _with_backbone_prefix(dict(sd))
    baseline = not any(k.startswith('backbone.spm.') for k in sd)
    beit = is_beit(sd)
    out, dropped, unmatched = {}, [], []
    for key, value in sd.items():
        if beit and key == 'backbone.cls_token':  # BEiT's class token runs through the ViT blocks
            out['backbone.vit.cls_token'] = value
            continue
        for pattern, target in RULES:
            m = re.fullmatch(pattern, key)
            if not m:
                continue
            if target is None:
                dropped.append(key)
            else:
                new = target(m, baseline) if callable(target) else m.expand(target)
                if new == 'backbone.vit.pos_embed' and value.shape[1] != int(value.shape[1] ** 0.5) ** 2:
                    value = value[:, 1:]
                if new.endswith('attn.rel_pos_table'):
                    value, out[new[:-len('rel_pos_table')] + 'rel_pos_cls'] = _split_table(value)
                out[new] = value
            break
        else:
            unmatched.append(key)
    return out, dropped, unmatched


def _split_table(t: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """BEiT's ((2G-1)^2 + 3, heads) table -> (heads, 2G-1, 2G-1) grid offsets, (heads, 3) class entries."""
    side = math.isqrt(t.shape[0] - 3)
    if t.device.type == 'meta':
        return (torch.empty(t.shape[1], side, side, device='meta', dtype=t.dtype),
                torch.empty(t.shape[1], 3, device='meta', dtype=t.dtype))
    return t[:-3].t().reshape(t.shape[1], side, side).contiguous(), t[-3:].t().contiguous()


# ours -> official (the inverse of RULES for the backbone; necks and heads keep their names). Callables get the
# match, the number of interactions and whether the ViT is BEiT's (gamma_1 / gamma_2 there, gamma1 / gamma2 else).
_TO_OFFICIAL: List[Tuple[str, Callable[[re.Match, int, bool], str]]] = [
    (r'backbone\.extra_extractors\.(\d+)\.(.+)',
     lambda m, n, b: f'backbone.interactions.{n - 1}.extra_extractors.{m[1]}.{m[2]}'),
    (r'backbone\.vit\.blocks\.(\d+)\.ls([12])\.gamma',
     lambda m, n, b: f'backbone.blocks.{m[1]}.gamma{"_" if b else ""}{m[2]}'),
    (r'backbone\.vit\.(blocks\..+|patch_embed\..+|pos_embed|cls_token)', lambda m, n, b: f'backbone.{m[1]}'),
    (r'backbone\.(?:pyramid\.)?norms\.(\d)\.(.+)', lambda m, n, b: f'backbone.norm{int(m[1]) + 1}.{m[2]}'),
    (r'backbone\.pyramid\.up4\.(.+)', lambda m, n, b: f'backbone.up1.{m[1]}'),
    (r'backbone\.pyramid\.up8\.(.+)', lambda m, n, b: f'backbone.up2.{m[1]}'),
]


def convert_to_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """This suite's state dict (``backbone.*`` + necks/heads) -> the official code's names (the inverse of
    ``convert_official``). The position embedding gets back a class-token slot of zeros (never read by the
    official forward) and the backbone a zero ``cls_token``. A BEiT ViT's ``rel_pos_table`` + ``rel_pos_cls`` become
    the official ``relative_position_bias_table`` with its ``relative_position_index`` buffer."""
    from .checkpoint import beit_relative_position_index
    n = len({m[1] for k in sd for m in [re.match(r'backbone\.interactions\.(\d+)\.', k)] if m})
    beit = is_beit(sd)
    out, index = {}, {}
    for key, value in sd.items():
        if key.endswith('attn.rel_pos_cls'):
            continue
        if key.endswith('attn.rel_pos_table'):
            cls = sd.get(key[:-len('rel_pos_table')] + 'rel_pos_cls', value.new_zeros(value.shape[0], 3))
            grid = (value.shape[1] + 1) // 2
            base = re.sub(r'^backbone\.vit\.', 'backbone.', key[:-len('rel_pos_table')])
            out[base + 'relative_position_bias_table'] = torch.cat([value.flatten(1).t(), cls.t()])
            if (grid, value.device) not in index:  # one buffer per grid, shared by the blocks (as values)
                index[grid, value.device] = (
                    torch.empty((grid * grid + 1,) * 2, dtype=torch.long, device='meta') if value.is_meta
                    else beit_relative_position_index(grid).to(value.device))
            out[base + 'relative_position_index'] = index[grid, value.device]
            continue
        for pattern, fn in _TO_OFFICIAL:
            m = re.fullmatch(pattern, key)
            if m:
                key = fn(m, n, beit)
                break
        if key == 'backbone.pos_embed':
            value = torch.cat([value.new_zeros(1, 1, value.shape[2]), value], 1)
            out['backbone.cls_token'] = value.new_zeros(1, 1, value.shape[2])
        out[key] = value
    return out


WIDTH_TO_ARCH = {192: 'T', 384: 'S', 768: 'B', 1024: 'L'}


def check_kwargs(backbone_sd: Dict[str, torch.Tensor], arch: Optional[str] = None) -> Tuple[str, dict]:
    """The backbone a converted checkpoint describes, as (type, keyword arguments): ViTAdapter (ViTBaseline without
    SPM keys) with the arch (from the width when ``arch`` is None), the number of interactions, the extra extractors
    and the pre-training grid read from the keys. Keys without a 'backbone.' prefix."""
    width = backbone_sd['vit.patch_embed.proj.weight'].shape[0]
    if arch is None:
        if width not in WIDTH_TO_ARCH:
            raise ValueError(f'no preset has width {width} (T 192, S 384, B 768, L 1024); pass --check ARCH')
        arch = WIDTH_TO_ARCH[width]
    beit = {}
    if 'vit.pos_embed' in backbone_sd:
        side = math.isqrt(backbone_sd['vit.pos_embed'].shape[1]) * 16
    else:  # BEiT: no position embedding; the relative position tables give the grid (BEiT's img_size)
        side = (backbone_sd['vit.blocks.0.attn.rel_pos_table'].shape[1] + 1) // 2 * 16
        beit = dict(rel_pos_bias=True, class_token='vit.cls_token' in backbone_sd, abs_pos_embed=False,
                    qkv_bias='qv' if 'vit.blocks.0.attn.q_bias' in backbone_sd else True)
    if not any(k.startswith('spm.') for k in backbone_sd):
        return 'ViTBaseline', dict(arch=arch, pretrain_size=side, **beit)
    n = len({k.split('.')[1] for k in backbone_sd if k.startswith('interactions.')})
    extra = any(k.startswith('extra_extractors.') for k in backbone_sd)
    return 'ViTAdapter', dict(arch=arch, n_interactions=n, use_extra_extractor=extra, pretrain_size=side, **beit)


def build_for_check(backbone_sd: Dict[str, torch.Tensor], arch: Optional[str] = None) -> torch.nn.Module:
    """Build the backbone :func:`check_kwargs` reads from a converted checkpoint."""
    from .backbone import build_backbone
    kind, kwargs = check_kwargs(backbone_sd, arch)
    return build_backbone(dict(kwargs, type=kind))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog='python -m adapter.convert',
        description='Convert an official ViT-Adapter checkpoint (czczup/ViT-Adapter, detection or segmentation) '
                    'to this suite. Exit 0: converted; 1: nothing to convert or keys it cannot place (nothing '
                    'written); 2: usage error.')
    ap.add_argument('src', help='official checkpoint (.pth)')
    ap.add_argument('dst', help='output checkpoint (.pth); refuses to overwrite unless --force')
    ap.add_argument('--trust', action='store_true', help='allow pickled objects in src (only for files you trust)')
    ap.add_argument('--check', nargs='?', const='auto', metavar='ARCH',
                    help='build the backbone the checkpoint describes (arch from its width, or ARCH) and load the '
                         'converted weights strictly before writing')
    ap.add_argument('--force', action='store_true', help='overwrite dst')
    args = ap.parse_args(argv)
    import os
    if os.path.exists(args.dst) and not args.force:
        print(f'error: {args.dst} exists; pass --force to overwrite', file=sys.stderr)
        return 2
    if not os.path.isfile(args.src):
        print(f'error: {args.src} does not exist', file=sys.stderr)
        return 2
    try:
        sd = read_checkpoint(args.src, trust=args.trust)
    except (RuntimeError, ValueError, OSError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    out, dropped, unmatched = convert_official(sd)
    for key in dropped:
        print(f'dropped {key}: {drop_reason(key)}')
    if 'backbone.vit.pos_embed' in out:
        print(f'note: {POS_EMBED_NOTE}')
    if unmatched:
        print(f'error: {len(unmatched)} keys of {args.src} have no place in this suite (nothing written):',
              file=sys.stderr)
        for key in unmatched:
            print(f'  {key}', file=sys.stderr)
        return 1
    backbone = {k[len('backbone.'):]: v for k, v in out.items() if k.startswith('backbone.')}
    if not backbone:
        print(f'error: {args.src} holds no ViT-Adapter backbone weights ({len(sd)} tensors, none under '
              f'backbone.*/blocks.*/spm.*); nothing written', file=sys.stderr)
        return 1
    if args.check:
        try:
            from .backbone import build_backbone
            kind, kwargs = check_kwargs(backbone, None if args.check == 'auto' else args.check)
            model = build_backbone(dict(kwargs, type=kind))
            model.load_state_dict(backbone, strict=True)
        except (RuntimeError, ValueError, KeyError) as err:
            print(f'error: --check failed, nothing written: {err}', file=sys.stderr)
            return 1
        desc = ', '.join(f'{k}={v!r}' for k, v in kwargs.items())
        print(f'check: the backbone loads strictly into {kind}({desc}) ({len(backbone)} tensors)')
    torch.save({'state_dict': out, 'meta': dict(converted_from=os.path.abspath(args.src), dropped={
        k: drop_reason(k) for k in dropped}, notes=[POS_EMBED_NOTE])}, args.dst)
    print(f'wrote {args.dst}: {len(out)} tensors ({len(backbone)} backbone)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
