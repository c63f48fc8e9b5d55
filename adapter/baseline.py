"""Simple multi-scale outputs of a plain ViT (the paper's ViT baseline, N = 0).

The outputs of the last block of each quarter are normalised and resampled to strides 4, 8, 16, 32: two
2x2 transposed convs (with a norm and activation between), one 2x2 transposed conv, identity, 2x2 max-pool.

References:
    Li et al., "Benchmarking Detection Transfer Learning with Vision Transformers", 2021 (arXiv:2111.11429);
    Chen et al., "ViT-Adapter", ICLR 2023 (the ViT-T/S/B/L baselines of Tables 1-3).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn

from .contract import VIT_FIELDS, PyramidBackbone, resolve_arch
from .norm import NormSpec, get_act, get_norm, get_token_norm
from .upsample import Upsample2x


class SimplePyramid(nn.Module):
    """Four stride-16 maps -> strides 4, 8, 16, 32 with the same width.

    Args:
        dim: channels C.
        up_norm: norm between the two transposed convs of the stride-4 branch ('GN').
        compile: ``torch.compile`` the forward (see ``ViTAdapter``).
        act: activation name there ('GELU').
        token_norm: norm applied to each level's tokens first ('LN').
    """

    def __init__(self, dim: int, up_norm: NormSpec = 'GN', act: str = 'GELU', token_norm: NormSpec = 'LN'):
        super().__init__()
        self.norms = nn.ModuleList([get_token_norm(token_norm, dim) for _ in range(4)])
        self.up4 = nn.Sequential(Upsample2x(dim, dim), get_norm(up_norm, dim), get_act(act), Upsample2x(dim, dim))
        self.up8 = Upsample2x(dim, dim)
        self.down32 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """feats: 4 maps (B, C, H/16, W/16) -> [(B,C,H/4,W/4), (.., H/8), (.., H/16), (.., H/32)]."""
        maps = [n(f.flatten(2).transpose(1, 2)).transpose(1, 2).reshape(f.shape)
                for n, f in zip(self.norms, feats)]
        return [self.up4(maps[0]), self.up8(maps[1]), maps[2], self.down32(maps[3])]


class ViTBaseline(PyramidBackbone):
    """The plain-ViT baseline (the paper's ViT-T/S/B/L rows and N = 0): a ViT read out by ``SimplePyramid``.

    Composed from the ViT, not a mode of ``ViTAdapter``: it takes the ViT's arguments and the pyramid's, and
    refuses the adapter's (``n_interactions``, ``attn_type``, ``norm``, ...) instead of ignoring them.

    Args:
        arch: 'T' | 'S' | 'B' | 'L' | 'tiny' or a dict of preset fields; keyword overrides of the ViT fields
            (embed_dim, depth, num_heads) are accepted.
        window_attn, window_size, layer_scale_init, rel_pos_bias, with_cp, post_norm, embed_norm, ffn, mlp_ratio,
            qkv_bias, rope, rope_ref_grid, attn_norm, class_token, abs_pos_embed: the ViT's (see
            ``VisionTransformer``); the official baseline has layer scale 1.0 like the adapter's ViT (BEiT's and
            EVA-02's layouts: see ``ViTAdapter``).
        drop_path_rate, pretrain_size: None for the preset's value.
        pretrained: ViT checkpoint loaded into ``self.vit``.
        freeze_vit: freeze the ViT (and keep it in eval mode).
        up_norm: norm between the two transposed convs of the stride-4 branch ('GN').
    """

    def __init__(self, arch: Union[str, dict] = 'S', window_attn: Union[bool, Sequence[bool]] = False,
                 window_size: int = 14, drop_path_rate: Optional[float] = None, with_cp: bool = False,
                 pretrained: Optional[str] = None, pretrain_size: Optional[int] = None,
                 layer_scale_init: Optional[float] = 1.0, rel_pos_bias: bool = False, freeze_vit: bool = False,
                 up_norm: NormSpec = 'GN', post_norm: bool = False, embed_norm: bool = False, ffn: str = 'mlp',
                 mlp_ratio: float = 4.0, qkv_bias: Union[bool, str] = True, rope: bool = False,
                 rope_ref_grid: Optional[int] = None, attn_norm: bool = False, class_token: bool = False,
                 abs_pos_embed: bool = True, compile=None,
                 **arch_overrides):
        super().__init__()
        cfg = resolve_arch('ViTBaseline (a plain ViT: adapter arguments do not apply)', arch, arch_overrides,
                           allowed=[f for f in VIT_FIELDS if f not in ('drop_path_rate', 'pretrain_size')])
        depth = cfg['depth']
        if depth % 4:
            raise ValueError(f'the baseline takes the ends of the four quarters: depth {depth} must be divisible by 4')
        self._build_vit(cfg, drop_path_rate, pretrain_size, freeze_vit, layer_scale_init=layer_scale_init,
                        window_attn=window_attn, window_size=window_size, rel_pos_bias=rel_pos_bias,
                        with_cp=with_cp, post_norm=post_norm, embed_norm=embed_norm, ffn=ffn, mlp_ratio=mlp_ratio,
                        qkv_bias=qkv_bias, rope=rope, rope_ref_grid=rope_ref_grid, attn_norm=attn_norm,
                        class_token=class_token, abs_pos_embed=abs_pos_embed)
        self.n_interactions = 0
        self.quarter_ends = [depth // 4 * (i + 1) - 1 for i in range(4)]
        self.pyramid = SimplePyramid(cfg['embed_dim'], up_norm=up_norm)
        self._finish(pretrained, compile)

    def _forward(self, x: torch.Tensor, collect: Optional[list]) -> List[torch.Tensor]:
        self._check_input(x)
        tokens, hw = self.vit.embed(x)
        blocks: list = []
        self.vit.run_blocks(tokens, hw, collect=blocks)
        if collect is not None:
            collect.extend(blocks)
        return self.pyramid([self.vit.to_map(blocks[i], hw) for i in self.quarter_ends])
