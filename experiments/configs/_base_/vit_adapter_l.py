"""ViT-Adapter-L: the 'L' row of adapter/presets.py, pre-trained AugReg-L/16 at 384 (ImageNet-22K).

The size base of ``<task>_vit_adapter_L.py`` (``model = wire(_base_.model, backbone=_base_.vit_adapter_l)``): the arch
and its checkpoint, nothing the preset holds. Not under ``model``: mmengine forbids keys shared by sibling bases.
"""
vit_adapter_l = dict(arch='L', pretrained=(
    'pretrained/L_16-i21k-300ep-lr_0.001-aug_medium1-wd_0.1-do_0.1-sd_0.1--'
    'imagenet2012-steps_20k-lr_0.01-res_384.pth'))
