"""ViT-Adapter-B: the 'B' row of adapter/presets.py, pre-trained DeiT-B/16 at 224 (ImageNet-1K), as in
the official detection and ADE20K ImageNet-1K configs.

The size base of ``<task>_vit_adapter_B.py`` (``model = wire(_base_.model, backbone=_base_.vit_adapter_b)``): the arch
and its checkpoint, nothing the preset holds. Not under ``model``: mmengine forbids keys shared by sibling bases.
"""
vit_adapter_b = dict(arch='B', pretrained='pretrained/deit_base_patch16_224-b5f2ef4d.pth')
