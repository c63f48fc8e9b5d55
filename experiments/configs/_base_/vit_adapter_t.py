"""ViT-Adapter-T: the 'T' row of adapter/presets.py, pre-trained DeiT-Ti/16 at 224 (ImageNet-1K).

The size base of ``<task>_vit_adapter_T.py`` (``model = wire(_base_.model, backbone=_base_.vit_adapter_t)``): the arch
and its checkpoint, nothing the preset holds. Not under ``model``: mmengine forbids keys shared by sibling bases.
"""
vit_adapter_t = dict(arch='T', pretrained='pretrained/deit_tiny_patch16_224-a1311bcf.pth')
