"""Multi-scale deformable attention (MSDeformAttn): reference, compiled CPU/CUDA kernels, module."""
from .functions import ms_deform_attn
from .modules import MSDeformAttn
from .reference import ms_deform_attn_reference

__all__ = ['ms_deform_attn', 'ms_deform_attn_reference', 'MSDeformAttn']
