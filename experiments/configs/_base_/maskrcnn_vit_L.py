"""Mask R-CNN + plain ViT-L (the paper's baseline): the ViT-Adapter-L model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads, drop path and pre-training size come from the 'L' preset."""
_base_ = ['./maskrcnn_vit_adapter_L.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='L', window_attn=True, window_size=14,
                           layer_scale_init=1.0, pretrained=_base_.vit_adapter_l.pretrained))
