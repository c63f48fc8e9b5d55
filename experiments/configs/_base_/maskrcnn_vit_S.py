"""Mask R-CNN + plain ViT-S (the paper's baseline): the ViT-Adapter-S model's heads and recipe around a
``ViTBaseline`` (the ViT read out by the simple pyramid). The backbone dict is replaced, not edited: the baseline
refuses the adapter's arguments. Width, depth, heads and pre-training size come from the 'S' preset."""
_base_ = ['./maskrcnn_vit_adapter.py']
model = dict(backbone=dict(_delete_=True, type='ViTBaseline', arch='S', window_attn=True, window_size=14, layer_scale_init=1.0,
                           drop_path_rate=0.1,  # the official mask_rcnn_deit_*_fpn_3x baseline config
                           pretrained='pretrained/deit_small_patch16_224-cd65a155.pth'))
