"""Registers 'ViTAdapter' and 'ViTBaseline' into ``mmseg.registry.MODELS`` (and patches mmengine on import)."""
from mmseg.registry import MODELS

from experiments.shims._base import MMViTAdapter, MMViTBaseline

MODELS.register_module('ViTAdapter', module=MMViTAdapter, force=True)
MODELS.register_module('ViTBaseline', module=MMViTBaseline, force=True)

__all__ = ['MMViTAdapter', 'MMViTBaseline']
