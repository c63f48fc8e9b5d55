"""Layer-wise learning-rate decay for ViT backbones as an mmengine optim-wrapper constructor.

The rule of the official ``LayerDecayOptimizerConstructor`` (czczup/ViT-Adapter ``mmcv_custom``, used by the
official UperNet configs and the Mask R-CNN ViT(-Adapter)-L ones): the lr of ViT block ``i`` (1-based, of
``num_layers``) is scaled by ``layer_decay_rate ** (num_layers + 1 - layer_id)``: the patch/position embeddings
(layer 0) get the smallest lr, the last block ``rate ** 1``, and everything that is not the plain ViT (adapter
modules, neck, heads) the full lr (layer ``num_layers + 1``). Weight decay is 0 for 1-D parameters (norms, biases,
layer-scale gammas) and biases, and only for those: the official constructor also compares the bare names
'pos_embed' / 'cls_token' with full parameter names, which never match, so the position and level embeddings are
decayed. ``no_decay_keys`` (name substrings, default none) exempts more parameters. ``head_embed_keys`` (name
prefixes outside the backbone, default none) puts those parameters in layer 0 too: the segmentation version of the
official constructor does so for the Mask2Former head's query / level embeddings and its class and mask
predictors (``decode_head.{mask_embed, cls_embed, level_embed, query_embed, query_feat}``, :data:`MASK2FORMER_HEAD_EMBED`),
so they train at ``rate ** (num_layers + 1)`` of the lr (0.9 ** 25 = 0.072 for ViT-L).
tests/experiments/test_official_recipes.py checks every paper config's parameter groups against the official rule.

Config (``num_layers``, the number of ViT blocks, is counted in the model unless given)::

    optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                         constructor='ViTLayerDecayOptimWrapperConstructor',
                         paramwise_cfg=dict(layer_decay_rate=0.95))

Registered into mmengine's, mmdet's and mmseg's ``OPTIM_WRAPPER_CONSTRUCTORS``.
"""
from __future__ import annotations

import re
from typing import Sequence

from mmengine.dist import get_dist_info
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

DEFAULT_EMBED_KEYS = ('pos_embed', 'cls_token', 'patch_embed', 'mask_token')
DEFAULT_NO_DECAY_KEYS: tuple = ()  # the official rule: 1-D parameters and biases only (module docstring)
#: The head parameters that the official segmentation LayerDecayOptimizerConstructor puts in layer 0.
MASK2FORMER_HEAD_EMBED = ('decode_head.mask_embed', 'decode_head.cls_embed', 'decode_head.level_embed',
                          'decode_head.query_embed', 'decode_head.query_feat')


def layer_id_for_vit(name: str, num_layers: int, block_pattern: str = r'(?:^|\.)blocks\.(\d+)\.',
                     embed_keys: Sequence[str] = DEFAULT_EMBED_KEYS, backbone_prefix: str = 'backbone.',
                     head_embed_keys: Sequence[str] = ()) -> int:
    """Layer index of a parameter: 0 for ViT embeddings, ``i + 1`` for ViT block ``i``, else ``num_layers + 1``.

    Args:
        name: Parameter name as in ``model.named_parameters()`` (e.g. ``backbone.blocks.3.attn.qkv.weight``).
        num_layers: Number of ViT blocks.
        block_pattern: Regex whose first group is the block index (matched inside the backbone).
        embed_keys: Substrings of embedding parameter names inside the backbone.
        backbone_prefix: Prefix of backbone parameters; others (neck, heads) are ``num_layers + 1``...
        head_embed_keys: ...unless their name starts with one of these prefixes: layer 0.
    """
    if not name.startswith(backbone_prefix):
        return 0 if head_embed_keys and name.startswith(tuple(head_embed_keys)) else num_layers + 1
    inner = name[len(backbone_prefix):]
    if any(inner.startswith(k) or f'.{k}' in f'.{inner}'.split('blocks.')[0] for k in embed_keys):
        return 0
    m = re.search(block_pattern, inner)
    if m:
        return int(m.group(1)) + 1
    return num_layers + 1


def count_vit_blocks(module: nn.Module, block_pattern: str = r'(?:^|\.)blocks\.(\d+)\.',
                     backbone_prefix: str = 'backbone.') -> int:
    """Number of ViT blocks of a model: 1 + the largest block index among its backbone's parameter names.

    Raises:
        ValueError: No backbone parameter matches ``block_pattern``.
    """
    ids = [int(m.group(1)) for name, _ in module.named_parameters() if name.startswith(backbone_prefix)
           for m in [re.search(block_pattern, name[len(backbone_prefix):])] if m]
    if not ids:
        raise ValueError(f'ViTLayerDecayOptimWrapperConstructor: no parameter under {backbone_prefix!r} matches '
                         f'{block_pattern!r}; give paramwise_cfg num_layers=<ViT depth> (and block_pattern)')
    return max(ids) + 1


class _LayerDecayMixin:
    def add_params(self, params: list, module: nn.Module, prefix: str = '', is_dcn_module=None) -> None:
        cfg = dict(self.paramwise_cfg)
        num_layers = cfg.pop('num_layers', None)
        rate = cfg.pop('layer_decay_rate', 0.95)
        block_pattern = cfg.pop('block_pattern', r'(?:^|\.)blocks\.(\d+)\.')
        embed_keys = tuple(cfg.pop('embed_keys', DEFAULT_EMBED_KEYS))
        no_decay_keys = tuple(cfg.pop('no_decay_keys', DEFAULT_NO_DECAY_KEYS))
        backbone_prefix = cfg.pop('backbone_prefix', 'backbone.')
        head_embed_keys = tuple(cfg.pop('head_embed_keys', ()))
        if cfg:
            raise ValueError(f'ViTLayerDecayOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(cfg)}; '
                             'known: num_layers, layer_decay_rate, block_pattern, embed_keys, no_decay_keys, '
                             'backbone_prefix, head_embed_keys')
        if num_layers is None:
            num_layers = count_vit_blocks(module, block_pattern, backbone_prefix)
        groups: dict[tuple, dict] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.endswith('.bias') or any(k in name for k in no_decay_keys)
            layer_id = layer_id_for_vit(name, num_layers, block_pattern, embed_keys, backbone_prefix, head_embed_keys)
            scale = rate ** (num_layers + 1 - layer_id)
            key = (layer_id, no_decay)
            if key not in groups:
                groups[key] = dict(params=[], lr=self.base_lr * scale,
                                   weight_decay=0.0 if no_decay else self.base_wd,
                                   lr_scale=scale, layer_id=layer_id, param_names=[])
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        rank, _ = get_dist_info()
        if rank == 0:
            summary = ', '.join(f'layer {lid}{" no-decay" if nd else ""}: {len(g["params"])} params x{g["lr_scale"]:.3f}'
                                for (lid, nd), g in sorted(groups.items()))
            print_log(f'layer-wise lr decay {rate} over {num_layers} layers: {summary}', logger='current')
        for group in groups.values():
            group.pop('param_names')
            params.append(group)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module(force=True)
class ViTLayerDecayOptimWrapperConstructor(_LayerDecayMixin, DefaultOptimWrapperConstructor):
    """``DefaultOptimWrapperConstructor`` with ViT layer-wise lr decay (see module docstring).

    ``paramwise_cfg`` keys: ``num_layers`` (default: counted in the model, :func:`count_vit_blocks`),
    ``layer_decay_rate`` (0.95), ``block_pattern``, ``embed_keys``, ``no_decay_keys``, ``backbone_prefix``,
    ``head_embed_keys``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        # The parent validates paramwise_cfg against its own keys; keep ours aside.
        super().__init__(optim_wrapper_cfg, None)
        # never empty: the parent skips add_params (no layer decay at all) for an empty paramwise_cfg
        self.paramwise_cfg = dict(dict(layer_decay_rate=0.95), **(paramwise_cfg or {}))


def _register_downstream() -> None:
    """Also register into mmdet's and mmseg's registries (they fall back to mmengine's, but be explicit)."""
    for mod in ('mmdet.registry', 'mmseg.registry'):
        try:
            registry = __import__(mod, fromlist=['OPTIM_WRAPPER_CONSTRUCTORS']).OPTIM_WRAPPER_CONSTRUCTORS
        except ImportError:  # pragma: no cover - both are pinned in requirements.txt
            continue
        registry.register_module(name='ViTLayerDecayOptimWrapperConstructor',
                                 module=ViTLayerDecayOptimWrapperConstructor, force=True)


_register_downstream()
