"""Multi-scale deformable attention (MSDeformAttn): reference, compiled CPU/CUDA kernels, module.

``ms_deform_attn`` picks a backend by device and dtype ('cpu' / 'cuda' compiled kernels, built lazily on
first use; 'reference' pure PyTorch); override with ``backend=`` or ``VIT_ADAPTER_MSDA_BACKEND`` (also 'triton':
Triton kernels, ops/triton_msda.py, only when asked for).
See ops/README.md.
"""
from .functions import BACKENDS, ENV_VAR, current_backend, ms_deform_attn
from .modules import MSDeformAttn, grid_sample_form
from .reference import ms_deform_attn_grid_sample, ms_deform_attn_reference

__all__ = ['ms_deform_attn', 'ms_deform_attn_reference', 'ms_deform_attn_grid_sample', 'MSDeformAttn',
           'grid_sample_form', 'current_backend', 'BACKENDS', 'ENV_VAR']
