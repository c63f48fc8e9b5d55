"""ViT-Adapter backbone for dense prediction (pure PyTorch; no mmdet/mmseg/mmengine imports)."""
from .attention import (ATTN_TYPES, DeformableCrossAttention, GlobalCrossAttention, StripeCrossAttention,
                        build_cross_attention)
from .backbone import (OUT_STRIDES, SIZE_DIVISOR, VARIANTS, VIT_FEATURE_SOURCES, ViTAdapter, ViTBaseline,
                       build_backbone, check_input_size)
from .baseline import SimplePyramid
from .checkpoint import LoadReport, detect_format, load_pretrained
from .convert import convert_official, convert_to_official
from .convffn import ConvFFN
from .extractor import Extractor
from .injector import Injector
from .interaction import InteractionBlock, PriorAdd
from .norm import get_act, get_norm
from .presets import PRESETS, get_preset, interaction_indexes
from .spm import SpatialPriorModule
from .vit import VisionTransformer, resize_pos_embed

__all__ = ['ATTN_TYPES', 'ConvFFN', 'LoadReport', 'convert_official', 'convert_to_official', 'detect_format', 'load_pretrained', 'DeformableCrossAttention', 'Extractor', 'GlobalCrossAttention', 'Injector',
           'InteractionBlock', 'OUT_STRIDES', 'PRESETS', 'PriorAdd', 'SIZE_DIVISOR', 'SimplePyramid',
           'SpatialPriorModule', 'StripeCrossAttention', 'VARIANTS', 'VIT_FEATURE_SOURCES', 'ViTAdapter', 'ViTBaseline',
           'VisionTransformer', 'build_backbone', 'build_cross_attention', 'check_input_size', 'get_act',
           'get_norm', 'get_preset', 'interaction_indexes', 'resize_pos_embed']
