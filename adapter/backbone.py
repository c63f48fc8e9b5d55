"""ViT-Adapter backbone (and its ablation variants): a plain ViT wrapped with SPM, injectors and extractors.

Output contract: ``forward(x)`` with x (B, 3, H, W), H and W multiples of 32, returns four maps
(B, C, H/4, W/4), (B, C, H/8, W/8), (B, C, H/16, W/16), (B, C, H/32, W/32), C = ViT width
(``out_channels``, ``out_strides``, ``size_divisibility``, ``output_shape()``).

References:
    Chen et al., "Vision Transformer Adapter for Dense Predictions", ICLR 2023 (architecture, Tables 8-10);
    detectron2 ``modeling/backbone/vit.py`` (output-contract style). Written for this suite.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import ATTN_TYPES, DeformableCrossAttention
from .baseline import ViTBaseline
from .contract import OUT_STRIDES, SIZE_DIVISOR, PyramidBackbone, check_input_size, resolve_arch
from .extractor import Extractor
from .interaction import InteractionBlock
from .norm import NormSpec, get_norm
from .presets import interaction_indexes as even_split
from .spm import SpatialPriorModule
from .upsample import Upsample2x

VARIANTS = ('spm_add', 'spm_injector', 'full')
VIT_FEATURE_SOURCES = ('final', 'per_interaction')
__all__ = ['OUT_STRIDES', 'SIZE_DIVISOR', 'VARIANTS', 'VIT_FEATURE_SOURCES', 'ViTAdapter', 'ViTBaseline',
           'build_backbone', 'check_input_size']


def _init_adapter_weights(m: nn.Module) -> None:
    """Adapter init as in the paper's code: trunc-normal(0.02) linears, fan-out normal convs, unit norms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)) and m.weight is not None:
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class ViTAdapter(PyramidBackbone):
    """ViT-Adapter with every ablation knob.

    Args:
        arch: 'T' | 'S' | 'B' | 'L' | 'tiny' or a dict of preset fields (see ``adapter.presets``).
        n_interactions: N >= 1 interaction blocks splitting the ViT blocks evenly (N = 0, the plain ViT, is
            ``ViTBaseline``).
        variant: 'spm_add' (SPM resized to 1/16 and added) |
            'spm_injector' (SPM + injectors; no extractor inside the interactions, the pyramid is read out
            once at the end by the last interaction's extractor and the two extra ones) | 'full'.
        attn_type: adapter attention: 'deformable' | 'global' | 'cswin' | 'pale'.
        window_attn: ViT window attention: False, True (windows in all blocks but the last of each quarter)
            or a per-block list of booleans.
        window_size: window side in tokens.
        norm: norm of the SPM convs and the output norms ('BN' | 'SyncBN' | 'GN' | 'LN' | callable).
        drop_path_rate: ViT stochastic depth (None: the preset's value).
        with_cp: gradient checkpointing (ViT blocks, injectors, extractors).
        pretrained: path of a ViT checkpoint (DeiT, AugReg .npz/.pth, BEiT, Uni-Perceiver) loaded into the ViT.
        pretrain_size: image side of the pre-trained position embedding (None: the preset's value).
        layer_scale_init: initial value of the ViT's per-channel layer-scale gammas (None: no layer scale). The
            official ViT-Adapter ViT has layer scale in every block, initialised to 1.0 (the default).
        vit_feature_source: which ViT tokens are added to the output pyramid (with ``add_vit_feature``):
            'final' (the official detection backbone: the tokens after the last interaction, resized bilinearly to
            all four levels) or 'per_interaction' (the official segmentation backbone: level i gets the tokens
            after the interaction closing quarter i, i.e. interaction i for N = 4).
        rel_pos_bias: BEiT-style relative position bias in the ViT attention.
        use_extra_extractor: the two extra extractors after the last interaction (full variant only).
        add_vit_feature: add the resized ViT features of each interaction to the output pyramid.
        interaction_indexes: explicit [[first, last], ...] block ranges (overrides the even split).
        stripe_width: lines per group for cswin/pale attention.
        init_gamma: initial injector gamma (0 keeps the pre-trained ViT untouched at start).
        freeze_vit: freeze the ViT parameters (and keep it in eval mode).
        post_norm, embed_norm: Uni-Perceiver's BERT layout of the ViT (post-norm blocks, normed embeddings).
        class_token, abs_pos_embed, qkv_bias: BEiT's layout of the ViT (see ``VisionTransformer``): the official
            BEiT-Adapter carries BEiT's class token through the ViT blocks (not through the injectors and
            extractors, which see the grid tokens only), has no absolute position embedding and BEiT's q / v
            biases: ``class_token=True, abs_pos_embed=False, qkv_bias='qv', rel_pos_bias=True``, with
            ``pretrain_size`` = BEiT's ``img_size`` (the grid of the relative position tables). Its layer scale and
            injector gammas start at ``init_values`` (1e-6): ``layer_scale_init=1e-6, init_gamma=1e-6``.
        ffn, mlp_ratio, qkv_bias, rope, rope_ref_grid, attn_norm: the ViT's block layout (``VisionTransformer``);
            EVA-02-B/L: ``ffn='swiglu_ln', mlp_ratio=4 * 2 / 3, qkv_bias='qv', rope=True, rope_ref_grid=16``.
        compile: ``torch.compile`` the forward: None/False (eager, default), True (torch.compile's defaults) or a
            dict of its arguments (mode, backend, fullgraph, dynamic, options), e.g.
            ``dict(mode='reduce-overhead')`` for CUDA graphs on a GPU. ``forward_intermediates`` stays eager.
        arch overrides: any preset field (embed_dim, depth, num_heads, deform_heads, deform_ratio,
            conv_inplane, n_points, cffn_ratio) may also be passed as a keyword.
    """

    def __init__(self, arch: Union[str, dict] = 'S', n_interactions: int = 4, variant: str = 'full',
                 attn_type: str = 'deformable', window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: int = 14, norm: NormSpec = 'BN', drop_path_rate: Optional[float] = None,
                 with_cp: bool = False, pretrained: Optional[str] = None, pretrain_size: Optional[int] = None,
                 layer_scale_init: Optional[float] = 1.0,
                 rel_pos_bias: bool = False, use_extra_extractor: bool = True, add_vit_feature: bool = True,
                 vit_feature_source: str = 'final',
                 interaction_indexes: Optional[List[List[int]]] = None, stripe_width: int = 2,
                 init_gamma: float = 0.0, freeze_vit: bool = False,
                 post_norm: bool = False, embed_norm: bool = False, ffn: str = 'mlp', mlp_ratio: float = 4.0,
                 qkv_bias: Union[bool, str] = True, rope: bool = False, rope_ref_grid: Optional[int] = None,
                 attn_norm: bool = False, class_token: bool = False, abs_pos_embed: bool = True, compile=None,
                 **arch_overrides):
        super().__init__()
        cfg = resolve_arch('ViTAdapter', arch, arch_overrides)
        if variant == 'baseline' or n_interactions == 0:
            raise ValueError("the plain-ViT baseline (N = 0) is its own backbone: type='ViTBaseline' "
                             "(adapter.ViTBaseline), which takes the ViT's arguments only")
        if variant not in VARIANTS:
            raise ValueError(f'unknown variant {variant!r}; choose one of {VARIANTS} (or ViTBaseline)')
        if attn_type not in ATTN_TYPES:
            raise ValueError(f'unknown attn_type {attn_type!r}; choose one of {ATTN_TYPES}')
        if vit_feature_source not in VIT_FEATURE_SOURCES:
            raise ValueError(f'unknown vit_feature_source {vit_feature_source!r}; choose one of {VIT_FEATURE_SOURCES} '
                             f"('final': the official detection backbone, 'per_interaction': the segmentation one)")
        if n_interactions is None or n_interactions < 0:
            raise ValueError(f'n_interactions must be >= 1, got {n_interactions}')
        self.vit_feature_source, self.variant, self.attn_type = vit_feature_source, variant, attn_type
        self._build_vit(cfg, drop_path_rate, pretrain_size, freeze_vit, layer_scale_init=layer_scale_init,
                        window_attn=window_attn, window_size=window_size, rel_pos_bias=rel_pos_bias,
                        with_cp=with_cp, post_norm=post_norm, embed_norm=embed_norm, ffn=ffn, mlp_ratio=mlp_ratio,
                        qkv_bias=qkv_bias, rope=rope, rope_ref_grid=rope_ref_grid, attn_norm=attn_norm,
                        class_token=class_token, abs_pos_embed=abs_pos_embed)
        dim, depth = cfg['embed_dim'], cfg['depth']
        self.with_cp = with_cp
        self.indexes = (interaction_indexes if interaction_indexes is not None
                        else even_split(depth, n_interactions))
        self._check_indexes(self.indexes, depth)
        self.n_interactions = len(self.indexes)
        dp = cfg['drop_path_rate'] if drop_path_rate is None else drop_path_rate
        common = dict(attn_type=attn_type, n_points=cfg['n_points'], ratio=cfg['deform_ratio'],
                      stripe_width=stripe_width)
        inject = {'spm_add': 'add', 'spm_injector': 'attn', 'full': 'attn'}[variant]
        # full: an extractor in every interaction. spm_injector: no extractor feeding the next injector;
        # the pyramid is read out once after the last interaction (its extractor + the 2 extra ones),
        # the definition whose count matches the paper's 46.6M (Table 8). spm_add: no attention at all.
        n = self.n_interactions
        extract = [variant == 'full' or (variant == 'spm_injector' and i == n - 1) for i in range(n)]
        final_extract = variant in ('full', 'spm_injector')
        self.level_embed = nn.Parameter(torch.zeros(3, dim))
        nn.init.normal_(self.level_embed)
        self.spm = SpatialPriorModule(cfg['conv_inplane'], dim, norm=norm)
        self.interactions = nn.ModuleList([
            InteractionBlock(dim, cfg['deform_heads'], inject, extract[i], cffn_ratio=cfg['cffn_ratio'],
                             drop_path=dp, init_gamma=init_gamma, with_cp=with_cp, **common)
            for i in range(n)])
        # the official code gives the two extra extractors the backbone's drop-path rate, like the others
        self.extra_extractors = nn.ModuleList([
            Extractor(dim, cfg['deform_heads'], 1, cffn_ratio=cfg['cffn_ratio'], drop_path=dp, **common)
            for _ in range(2)]) if (final_extract and use_extra_extractor) else nn.ModuleList()
        self.add_vit_feature = add_vit_feature
        self.up = Upsample2x(dim, dim)
        self.norms = nn.ModuleList([get_norm(norm, dim) for _ in range(4)])
        for part in (self.spm, self.interactions, self.extra_extractors, self.up, self.norms):
            part.apply(_init_adapter_weights)
        for m in self.modules():
            if isinstance(m, DeformableCrossAttention):
                m._reset_parameters()
        self._finish(pretrained, compile)

    @staticmethod
    def _check_indexes(indexes: List[List[int]], depth: int) -> None:
        """Interaction ranges must be consecutive [first, last] pairs covering blocks 0..depth-1."""
        expect = 0
        for pair in indexes:
            first, last = pair[0], pair[-1]
            if first != expect or last < first:
                raise ValueError(f'interaction_indexes {indexes} must be consecutive [first, last] ranges '
                                 f'covering blocks 0..{depth - 1}')
            expect = last + 1
        if expect != depth:
            raise ValueError(f'interaction_indexes {indexes} must cover all {depth} ViT blocks')

    # ------------------------------------------------------------------------------------------- forward
    def _forward(self, x: torch.Tensor, collect: Optional[list]) -> List[torch.Tensor]:
        self._check_input(x)
        c1, c2, c3, c4 = self.spm(x)
        c_shapes = [tuple(m.shape[2:]) for m in (c2, c3, c4)]
        c = torch.cat([m.flatten(2).transpose(1, 2) + self.level_embed[i]
                       for i, m in enumerate((c2, c3, c4))], dim=1)
        tokens, hw = self.vit.embed(x)
        vit_maps = []
        for blk, (first, last) in zip(self.interactions, ((p[0], p[-1]) for p in self.indexes)):
            tokens, c = blk(tokens, hw, c, c_shapes, self.vit, first, last + 1, collect)
            vit_maps.append(self.vit.to_map(tokens, hw))
        grid_tokens = self.vit.split_prefix(tokens, hw)[1]
        for ex in self.extra_extractors:
            if self.with_cp and self.training and c.requires_grad:
                c = checkpoint(ex, c, c_shapes, grid_tokens, [hw], use_reentrant=False)
            else:
                c = ex(c, c_shapes, grid_tokens, [hw])
        sizes = [h * w for h, w in c_shapes]
        c2, c3, c4 = [self.vit.to_map(t, hw) for t, hw in zip(c.split(sizes, dim=1), c_shapes)]
        c1 = self.up(c2) + c1
        outs = [c1, c2, c3, c4]
        if self.add_vit_feature:
            if self.vit_feature_source == 'final':
                # official detection: the final tokens, x4 / x2 / as is / x0.5 (bilinear, align_corners=False)
                picks = [vit_maps[-1]] * 4
            else:
                # official segmentation: level j gets the ViT tokens after the interaction holding the last block
                # of quarter j (N = 4: interaction j itself; N = 2: [0, 0, 1, 1]; N = 6: [1, 2, 4, 5]).
                picks = [vit_maps[self._quarter_interaction(j)] for j in range(4)]
            outs = [o + F.interpolate(v, scale_factor=s, mode='bilinear', align_corners=False) if s != 1 else o + v
                    for o, v, s in zip(outs, picks, (4, 2, 1, 0.5))]
        return [norm(o) for norm, o in zip(self.norms, outs)]

    def _quarter_interaction(self, j: int) -> int:
        last_block = (j + 1) * self.vit.depth // 4 - 1
        return next(i for i, p in enumerate(self.indexes) if p[0] <= last_block <= p[-1])


BACKBONES = {'ViTAdapter': ViTAdapter, 'ViTBaseline': ViTBaseline}


def build_backbone(cfg: dict) -> nn.Module:
    """Build from a config dict ``dict(type='ViTAdapter' | 'ViTBaseline', **kwargs)`` (no mm* needed)."""
    cfg = dict(cfg)
    kind = cfg.pop('type', 'ViTAdapter')
    if kind not in BACKBONES:
        raise ValueError(f'unknown backbone type {kind!r}; choose one of {sorted(BACKBONES)}')
    return BACKBONES[kind](**cfg)
