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
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import ATTN_TYPES, DeformableCrossAttention
from .baseline import SimplePyramid
from .extractor import Extractor
from .interaction import InteractionBlock
from .norm import NormSpec, get_norm
from .presets import PRESET_FIELDS, get_preset
from .presets import interaction_indexes as even_split
from .spm import SpatialPriorModule
from .upsample import Upsample2x
from .vit import VisionTransformer

VARIANTS = ('baseline', 'spm_add', 'spm_injector', 'full')
VIT_FEATURE_SOURCES = ('final', 'per_interaction')
SIZE_DIVISOR = 32
OUT_STRIDES = (4, 8, 16, 32)


def check_input_size(h: int, w: int, who: str = 'ViTAdapter') -> None:
    """Raise a clear error unless both sides are multiples of 32."""
    if h % SIZE_DIVISOR or w % SIZE_DIVISOR:
        ph, pw = math.ceil(h / SIZE_DIVISOR) * SIZE_DIVISOR, math.ceil(w / SIZE_DIVISOR) * SIZE_DIVISOR
        raise ValueError(f'{who}: input size {h}x{w} (HxW) is not a multiple of {SIZE_DIVISOR}; pad the image '
                         f'to {ph}x{pw} (mmdet/mmseg: data_preprocessor pad_size_divisor={SIZE_DIVISOR} / '
                         f'size_divisor={SIZE_DIVISOR}) or resize it')


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


class ViTAdapter(nn.Module):
    """ViT-Adapter with every ablation knob.

    Args:
        arch: 'T' | 'S' | 'B' | 'L' | 'tiny' or a dict of preset fields (see ``adapter.presets``).
        n_interactions: N interaction blocks splitting the ViT blocks evenly; 0 means the baseline.
        variant: 'baseline' (plain ViT + simple pyramid) | 'spm_add' (SPM resized to 1/16 and added) |
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
        img_size: nominal input size (int or (H, W)) used by ``summary``/FLOP counts; checked against 32.
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
        baseline_up_norm: norm inside the baseline's stride-4 upsampling ('GN').
        post_norm, embed_norm: Uni-Perceiver's BERT layout of the ViT (post-norm blocks, normed embeddings).
        arch overrides: any preset field (embed_dim, depth, num_heads, deform_heads, deform_ratio,
            conv_inplane, n_points, cffn_ratio) may also be passed as a keyword.
    """

    def __init__(self, arch: Union[str, dict] = 'S', n_interactions: int = 4, variant: str = 'full',
                 attn_type: str = 'deformable', window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: int = 14, norm: NormSpec = 'BN', drop_path_rate: Optional[float] = None,
                 with_cp: bool = False, pretrained: Optional[str] = None, pretrain_size: Optional[int] = None,
                 img_size: Union[int, Tuple[int, int], None] = None, layer_scale_init: Optional[float] = 1.0,
                 rel_pos_bias: bool = False, use_extra_extractor: bool = True, add_vit_feature: bool = True,
                 vit_feature_source: str = 'final',
                 interaction_indexes: Optional[List[List[int]]] = None, stripe_width: int = 2,
                 init_gamma: float = 0.0, freeze_vit: bool = False, baseline_up_norm: NormSpec = 'GN',
                 post_norm: bool = False, embed_norm: bool = False, **arch_overrides):
        super().__init__()
        cfg = get_preset(arch)
        unknown = set(arch_overrides) - set(PRESET_FIELDS)
        if unknown:
            raise TypeError(f'ViTAdapter got unknown arguments {sorted(unknown)}; preset fields that may be '
                            f'overridden: {PRESET_FIELDS}')
        cfg.update(arch_overrides)
        if variant not in VARIANTS:
            raise ValueError(f'unknown variant {variant!r}; choose one of {VARIANTS}')
        if attn_type not in ATTN_TYPES:
            raise ValueError(f'unknown attn_type {attn_type!r}; choose one of {ATTN_TYPES}')
        if n_interactions == 0:
            variant = 'baseline'
        if vit_feature_source not in VIT_FEATURE_SOURCES:
            raise ValueError(f'unknown vit_feature_source {vit_feature_source!r}; choose one of {VIT_FEATURE_SOURCES} '
                             f"('final': the official detection backbone, 'per_interaction': the segmentation one)")
        self.vit_feature_source = vit_feature_source
        if img_size is not None:
            ih, iw = (img_size, img_size) if isinstance(img_size, int) else img_size
            check_input_size(ih, iw, f'ViTAdapter(img_size={img_size})')
            img_size = (ih, iw)
        self.cfg, self.variant, self.attn_type, self.img_size = cfg, variant, attn_type, img_size
        dim, depth = cfg['embed_dim'], cfg['depth']
        self.embed_dim = dim
        self.freeze_vit = freeze_vit
        self.vit = VisionTransformer(
            embed_dim=dim, depth=depth, num_heads=cfg['num_heads'],
            drop_path_rate=cfg['drop_path_rate'] if drop_path_rate is None else drop_path_rate,
            layer_scale_init=layer_scale_init, window_attn=window_attn, window_size=window_size,
            pretrain_size=pretrain_size or cfg['pretrain_size'], rel_pos_bias=rel_pos_bias, with_cp=with_cp,
            post_norm=post_norm, embed_norm=embed_norm)
        self.with_cp = with_cp
        if variant == 'baseline':
            if depth % 4:
                raise ValueError(f'the baseline takes the ends of the four quarters: depth {depth} must be '
                                 f'divisible by 4')
            self.n_interactions = 0
            self.quarter_ends = [depth // 4 * (i + 1) - 1 for i in range(4)]
            self.pyramid = SimplePyramid(dim, up_norm=baseline_up_norm)
        else:
            if n_interactions is None or n_interactions < 0:
                raise ValueError(f'n_interactions must be >= 0, got {n_interactions}')
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
        if pretrained:
            self.load_pretrained(pretrained)
        if freeze_vit:
            for p in self.vit.parameters():
                p.requires_grad_(False)

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

    # ----------------------------------------------------------------------------------------------- API
    @property
    def out_channels(self) -> List[int]:
        return [self.embed_dim] * 4

    out_strides = OUT_STRIDES
    size_divisibility = SIZE_DIVISOR

    def output_shape(self) -> Dict[str, Tuple[int, int]]:
        """Channels and stride per output level: {'p2'..'p5': (C, stride)}; inputs must be multiples of 32."""
        return {f'p{i + 2}': (self.embed_dim, s) for i, s in enumerate(OUT_STRIDES)}

    def load_pretrained(self, path_or_state, strict_shapes: bool = True):
        """Load a pre-trained ViT checkpoint into ``self.vit``; returns the ``LoadReport``."""
        from .checkpoint import load_pretrained
        return load_pretrained(self.vit, path_or_state, strict_shapes=strict_shapes)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_vit:
            self.vit.eval()
        return self

    # ------------------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x: (B, 3, H, W), H and W multiples of 32 -> 4 maps (B, C, H/s, W/s) for s in (4, 8, 16, 32)."""
        return tuple(self._forward(x, None))

    def forward_intermediates(self, x: torch.Tensor) -> Dict[str, object]:
        """Intermediate maps for analysis (no state is changed).

        Returns:
            dict(outs=[4 maps as ``forward``], stride8=(B, C, H/8, W/8) (the stride-8 output),
            vit_blocks=[per ViT block (B, C, H/16, W/16)]).
        """
        collect: list = []
        outs = self._forward(x, collect)
        hw = (x.shape[2] // self.vit.patch_size, x.shape[3] // self.vit.patch_size)
        return dict(outs=outs, stride8=outs[1], vit_blocks=[self.vit.to_map(t, hw) for t in collect])

    def _forward(self, x: torch.Tensor, collect: Optional[list]) -> List[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f'{type(self).__name__}: expected input (B, 3, H, W), got {tuple(x.shape)}')
        check_input_size(x.shape[2], x.shape[3], type(self).__name__)
        if self.variant == 'baseline':
            return self._forward_baseline(x, collect)
        c1, c2, c3, c4 = self.spm(x)
        c_shapes = [tuple(m.shape[2:]) for m in (c2, c3, c4)]
        c = torch.cat([m.flatten(2).transpose(1, 2) + self.level_embed[i]
                       for i, m in enumerate((c2, c3, c4))], dim=1)
        tokens, hw = self.vit.embed(x)
        vit_maps = []
        for blk, (first, last) in zip(self.interactions, ((p[0], p[-1]) for p in self.indexes)):
            tokens, c = blk(tokens, hw, c, c_shapes, self.vit, first, last + 1, collect)
            vit_maps.append(self.vit.to_map(tokens, hw))
        for ex in self.extra_extractors:
            if self.with_cp and self.training and c.requires_grad:
                c = checkpoint(ex, c, c_shapes, tokens, [hw], use_reentrant=False)
            else:
                c = ex(c, c_shapes, tokens, [hw])
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

    def _forward_baseline(self, x: torch.Tensor, collect: Optional[list]) -> List[torch.Tensor]:
        tokens, hw = self.vit.embed(x)
        blocks: list = []
        self.vit.run_blocks(tokens, hw, collect=blocks)
        if collect is not None:
            collect.extend(blocks)
        return self.pyramid([self.vit.to_map(blocks[i], hw) for i in self.quarter_ends])


class ViTBaseline(ViTAdapter):
    """The plain-ViT baseline: ``ViTAdapter(variant='baseline')`` (simple pyramid of Li et al. 2021)."""

    def __init__(self, arch: Union[str, dict] = 'S', **kwargs):
        kwargs.pop('variant', None)
        kwargs.pop('n_interactions', None)
        super().__init__(arch, n_interactions=0, variant='baseline', **kwargs)


BACKBONES = {'ViTAdapter': ViTAdapter, 'ViTBaseline': ViTBaseline}


def build_backbone(cfg: dict) -> nn.Module:
    """Build from a config dict ``dict(type='ViTAdapter' | 'ViTBaseline', **kwargs)`` (no mm* needed)."""
    cfg = dict(cfg)
    kind = cfg.pop('type', 'ViTAdapter')
    if kind not in BACKBONES:
        raise ValueError(f'unknown backbone type {kind!r}; choose one of {sorted(BACKBONES)}')
    return BACKBONES[kind](**cfg)
