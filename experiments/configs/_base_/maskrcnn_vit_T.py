"""Mask R-CNN + plain ViT-T (the paper's baseline): the ViT-Adapter-T model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads, drop path and pre-training size come from the 'T' preset (its
drop path, 0.1, is also the official mask_rcnn_deit_*_fpn_3x baseline's, which S and B set)."""
_base_ = ['./maskrcnn_vit_adapter_T.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='T', window_attn=True, window_size=14, layer_scale_init=1.0,
                           pretrained='pretrained/deit_tiny_patch16_224-a1311bcf.pth'))
