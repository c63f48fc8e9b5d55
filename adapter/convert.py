"""``python -m adapter.convert IN.pth OUT.pth``: official ViT-Adapter checkpoint -> this suite's names.

Input: an mmdet 2.x / mmseg 0.x checkpoint of the official code (czczup/ViT-Adapter): ``state_dict`` with
``backbone.*`` (spm, level_embed, interactions.i.{injector, extractor, extra_extractors}, up, norm1..4,
blocks, patch_embed, pos_embed, cls_token; or the ViTBaseline's up1/up2/norm1..4), ``neck.*`` and heads.
Output: ``{'state_dict': ..., 'meta': {...}}`` loadable by mmdet 3.x / mmseg 1.x models built with the shims
(``backbone.vit.*`` for the ViT, ``backbone.norms.i`` for norm{i+1}, top-level ``backbone.extra_extractors``).
Heads and necks keep their names (mmdet / mmseg did not rename Mask R-CNN, FPN, UPerHead or FCNHead params).
The position embedding loses its class-token slot. Every key not matched by ``RULES`` is reported and dropped.

All renames are in the one table ``RULES`` (first match wins).
"""
from __future__ import annotations

import argparse
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
    (r'backbone\.blocks\.(\d+)\.gamma_?1', r'backbone.vit.blocks.\1.ls1.gamma'),
    (r'backbone\.blocks\.(\d+)\.gamma_?2', r'backbone.vit.blocks.\1.ls2.gamma'),
    (r'backbone\.blocks\.(\d+)\.(.+)', r'backbone.vit.blocks.\1.\2'),
    (r'backbone\.patch_embed\.(.+)', r'backbone.vit.patch_embed.\1'),
    (r'backbone\.pos_embed', r'backbone.vit.pos_embed'),                    # class-token slot removed below
    (r'backbone\.cls_token', None),
    (r'(neck|rpn_head|roi_head|bbox_head|mask_head|decode_head|auxiliary_head)\.(.+)', r'\1.\2'),
]


def convert_official(sd: Dict[str, torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], List[str], List[str]]:
    """Rename an official state dict. Returns (converted, dropped on purpose, unmatched keys)."""
    baseline = not any(k.startswith('backbone.spm.') for k in sd)
    out, dropped, unmatched = {}, [], []
    for key, value in sd.items():
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
                out[new] = value
            break
        else:
            unmatched.append(key)
    return out, dropped, unmatched


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description='Convert an official ViT-Adapter checkpoint to this suite.')
    ap.add_argument('src', help='official checkpoint (.pth)')
    ap.add_argument('dst', help='output checkpoint (.pth); refuses to overwrite unless --force')
    ap.add_argument('--trust', action='store_true', help='allow pickled objects in src (only for files you trust)')
    ap.add_argument('--check', metavar='ARCH', help="build ViTAdapter(arch=ARCH) and load the backbone strictly")
    ap.add_argument('--force', action='store_true', help='overwrite dst')
    args = ap.parse_args(argv)
    import os
    if os.path.exists(args.dst) and not args.force:
        print(f'{args.dst} exists; pass --force to overwrite', file=sys.stderr)
        return 2
    sd = read_checkpoint(args.src, trust=args.trust)
    out, dropped, unmatched = convert_official(sd)
    print(f'converted {len(out)} keys; dropped {dropped}; unmatched (not written) {unmatched}')
    if args.check:
        from .backbone import ViTAdapter
        model = ViTAdapter(arch=args.check)
        model.load_state_dict({k[len('backbone.'):]: v for k, v in out.items() if k.startswith('backbone.')})
        print(f'backbone loads strictly into ViTAdapter(arch={args.check!r})')
    torch.save({'state_dict': out, 'meta': dict(converted_from=os.path.abspath(args.src), dropped=dropped,
                                                 unmatched=unmatched)}, args.dst)
    return 0


if __name__ == '__main__':
    sys.exit(main())
