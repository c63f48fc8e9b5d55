"""Registration shims: make ``adapter`` backbones buildable from mmdet / mmseg configs.

Configs switch them on with ``custom_imports=dict(imports=['experiments.shims.mmdet_adapter'],
allow_failed_imports=False)`` (or ``mmseg_adapter``) and ``backbone=dict(_delete_=True, type='ViTAdapter', ...)``.
"""
