"""HTC++'s extra global self-attention on the last pyramid level, as an mmdet neck (``ExtraAttention``).

Swin's HTC++ "appends an extra global self-attention layer at the output of the last stage"; the official ViT-Adapter
HTC++ configs put it before the FPN (``detection/mmdet_custom/models/necks/extra_attention.py``, read for facts): a
pre-norm transformer block (LayerNorm, multi-head attention with qkv bias, LayerNorm, MLP x4, drop path, no layer
scale) on the stride-32 map, then a final LayerNorm; the other levels pass through. Built from the suite's ViT
``Block`` (``adapter.vit``), so the block is not a copy. Used in a list neck, ``[ExtraAttention, FPN]`` (mmengine
builds a list of modules as ``nn.Sequential``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmdet.registry import MODELS
from torch import nn
from torch.utils.checkpoint import checkpoint

from adapter.vit import Block


@MODELS.register_module(force=True)
class ExtraAttention(nn.Module):
    """A global transformer block and a LayerNorm on the last of the input maps.

    Args:
        in_channels: channels of each input level (the last one is attended).
        num_head: attention heads.
        with_ffn: must be True (the official configs; the block always has its MLP here).
        ffn_ratio: MLP hidden ratio.
        drop_path: stochastic depth of the block.
        with_cp: gradient checkpointing in training.
    """

    def __init__(self, in_channels: Sequence[int], num_head: int, with_ffn: bool = True, ffn_ratio: float = 4.0,
                 drop_path: float = 0.0, with_cp: bool = False):
        super().__init__()
        if not with_ffn:
            raise ValueError('ExtraAttention: only with_ffn=True (the official HTC++ setting) is implemented')
        self.in_channels, self.with_cp = list(in_channels), with_cp
        dim = self.in_channels[-1]
        self.block = Block(dim, num_head, mlp_ratio=ffn_ratio, qkv_bias=True, drop_path=drop_path)
        self.final_norm = nn.LayerNorm(dim)
        for m in self.modules():  # the official init: truncated normal linear weights, zero biases
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def _attend(self, feat: torch.Tensor) -> torch.Tensor:
        b, c, h, w = feat.shape
        x = self.final_norm(self.block(feat.flatten(2).transpose(1, 2), (h, w)))
        return x.transpose(1, 2).reshape(b, c, h, w)

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'ExtraAttention: {len(inputs)} inputs, expected {len(self.in_channels)}')
        feat = inputs[-1]
        if self.with_cp and self.training and feat.requires_grad:
            feat = checkpoint(self._attend, feat, use_reentrant=False)
        else:
            feat = self._attend(feat)
        return (*inputs[:-1], feat)
