"""Shared part of the mmdet / mmseg shims: mmengine ``BaseModule`` flavours of the pure adapter backbones.

The adapter classes stay plain ``nn.Module``; here they get mmengine's ``init_cfg`` handling by multiple
inheritance (parameter names are unchanged, so checkpoints are interchangeable). ``pretrained=`` or
``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` load a ViT checkpoint with the suite's own loader
(format detection, position-embedding resizing, full key report) when mmengine calls ``init_weights()``.
"""
from __future__ import annotations

import copy
import logging

from mmengine.logging import print_log
from mmengine.model import BaseModule

from adapter import ViTAdapter, ViTBaseline
from experiments.compat import patch_mmengine

patch_mmengine()


class _MMMixin:
    """init_cfg / pretrained handling for mmengine; the ViT checkpoint loads in ``init_weights``."""

    def _mm_setup(self, pretrained, init_cfg):
        if pretrained is not None and init_cfg is not None:
            raise ValueError('give either pretrained=PATH or init_cfg=dict(type="Pretrained", ...), not both')
        if pretrained is not None:
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        self.init_cfg = copy.deepcopy(init_cfg)

    def init_weights(self):
        cfg = self.init_cfg or {}
        if cfg.get('type') == 'Pretrained':
            report = self.load_pretrained(cfg['checkpoint'])
            print_log(f'{type(self).__name__}: loaded {cfg["checkpoint"]}: {report}', logger='current',
                      level=logging.INFO)
        elif cfg:
            raise ValueError(f'{type(self).__name__}: only init_cfg=dict(type="Pretrained", checkpoint=...) is '
                             f'supported (the modules initialise themselves), got {cfg}')
        self._is_init = True


class MMViTAdapter(_MMMixin, ViTAdapter, BaseModule):
    """``adapter.ViTAdapter`` as an mmengine ``BaseModule`` (same arguments, plus ``init_cfg``)."""

    def __init__(self, *args, pretrained=None, init_cfg=None, **kwargs):
        super().__init__(*args, pretrained=None, **kwargs)
        self._mm_setup(pretrained, init_cfg)


class MMViTBaseline(_MMMixin, ViTBaseline, BaseModule):
    """``adapter.ViTBaseline`` as an mmengine ``BaseModule`` (same arguments, plus ``init_cfg``)."""

    def __init__(self, *args, pretrained=None, init_cfg=None, **kwargs):
        super().__init__(*args, pretrained=None, **kwargs)
        self._mm_setup(pretrained, init_cfg)
