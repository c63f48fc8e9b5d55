"""Registers 'ViTAdapter' and 'ViTBaseline' into ``mmdet.registry.MODELS`` (and patches mmengine on import), and
HTC++'s 'ExtraAttention' neck (``experiments.shims.extra_attention``)."""
from mmdet.registry import MODELS

import experiments.shims.extra_attention  # noqa: F401  (registers ExtraAttention)

from experiments.shims._base import MMViTAdapter, MMViTBaseline

MODELS.register_module('ViTAdapter', module=MMViTAdapter, force=True)
MODELS.register_module('ViTBaseline', module=MMViTBaseline, force=True)

__all__ = ['MMViTAdapter', 'MMViTBaseline']
